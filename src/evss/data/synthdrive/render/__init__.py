"""The SynthDrive world and its renderer, split by concept.

* :mod:`.noise`, :mod:`.textures`, :mod:`.props`, :mod:`.agents`, :mod:`.ground_sky`: procedural
  appearance (textures with a class id per texel).
* :mod:`.camera`: the pinhole camera and the world / camera axes.
* :mod:`.scene`: what a clip's world holds; :mod:`.street` lays it out from (config, seed).
* :mod:`.raster`: draws one frame of a scene into colour, inverse depth, object id and label.
* :mod:`.flow`: exact flow and occlusion from two frames' buffers; :mod:`.sensor`: camera effects.

:mod:`evss.data.synthdrive.clip` ties them together into a clip. Import from the modules; this
package re-exports nothing.
"""
