"""prodepth: seamless high-resolution depth maps for photographs of any size."""

__version__ = "0.1.0"
