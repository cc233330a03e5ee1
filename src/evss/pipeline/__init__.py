"""The segmenting pipeline behind `evss segment`, callable from Python."""
