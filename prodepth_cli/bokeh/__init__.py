"""Synthetic shallow depth of field from a photograph and its depth map.

`render.py` is the classical (reference) engine, `tflite.py` the phone-ready network's
runner; `lens.py` maps an f-number to blur, `focus.py` picks the focal plane,
`engine.py` ties them into one call per image (depth maps are read by `io/depth_map.py`).
"""
