"""Stereo pairs from one photograph and its depth map, for 3D screens, VR and anaglyph glasses.

`shift.py` turns the map into each eye's shift (divergence, convergence, which eye is
synthesised), `warp.py` makes an eye (depth-ordered forward warp, holes filled from the
background), `layouts.py` packs the two eyes into one image, and `render.py` runs it file to
file a band of rows at a time. `spatial_camera.py` and `spatial_heic.py` make Apple spatial
photos: the cameras' geometry, and the HEIC that holds both eyes.
"""
