"""`prodepth video`: self-supervised depth fitted to one clip (monodepth2 core, ground-contact
prior). `fit.fit_video` is the entry point; the other modules are its parts.

Torch is imported by the modules that need it, never by this package's `__init__`, so that
`prodepth depth` keeps starting without torch.
"""
