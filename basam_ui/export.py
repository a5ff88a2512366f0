"""`basam_ui.export`, as documented: the single-mask files and codecs, now `basam_ui.mask_formats`."""

from .mask_formats import *  # noqa: F401,F403
from .mask_formats import __all__  # noqa: F401
