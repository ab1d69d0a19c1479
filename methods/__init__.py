"""Colorization methods. Each module registers its methods; adding one = one module + one import line here."""

from colorbench.methods.base import BaseConfig, Method, MethodCard
from colorbench.methods.registry import METHODS, register_method

# One import line per method module (registration happens on import).
from colorbench.methods import gray  # noqa: F401,E402
from colorbench.methods import unet_l1  # noqa: F401,E402
from colorbench.methods import pix2pix  # noqa: F401,E402
from colorbench.methods import gorriz  # noqa: F401,E402
from colorbench.methods import cgan  # noqa: F401,E402
from colorbench.methods import colorful  # noqa: F401,E402
from colorbench.methods import unet_seg  # noqa: F401,E402

__all__ = ["METHODS", "BaseConfig", "Method", "MethodCard", "register_method"]
from colorbench.methods import cyclegan  # noqa: F401,E402
from colorbench.methods import spyncogan  # noqa: F401,E402
from colorbench.methods import two_image  # noqa: F401,E402
from colorbench.methods import zhang  # noqa: F401,E402
from colorbench.methods import ddcolor  # noqa: F401,E402
