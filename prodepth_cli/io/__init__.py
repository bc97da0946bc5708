"""Reading images, streaming their pixels, writing depth maps."""

import numpy as np

# The value of white in 8- and 16-bit pixels (the integer types images come in whole).
INTEGER_WHITE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
