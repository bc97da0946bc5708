"""Parallax videos ("3D photos") from one photograph and its depth map.

`paths.py` moves the camera (circle, swing, dolly, zoom), `levels.py` makes the depth map a
height field with hard edges, `raymarch.py` renders a frame (rays searched for the first
surface they meet, openings filled from the background) through a sampler: `samplers.py`'s
numpy/OpenCV one on the CPU or `torch_sampler.py`'s on a GPU, `encode.py` writes MP4, GIF or
WebP, and `render.py` runs it from an image file to a video file.
"""
