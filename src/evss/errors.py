"""Error types of evss. Every user-facing failure raises one of these with a message that names
the file or value at fault; the CLI turns them into a one-line message and a non-zero exit."""


class EvssError(Exception):
    """A user-facing error: the message names the file or value at fault."""


class DataError(EvssError):
    """Missing or malformed dataset files."""


class ConfigError(EvssError):
    """A config with unknown keys, wrong types or impossible values."""


class CheckpointError(EvssError):
    """A checkpoint that is missing, unsafe, or made for another architecture."""
