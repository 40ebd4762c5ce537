"""The methods: one module each, on :class:`MetaMethod` and a registry."""

from ._base import MetaMethod, available_methods, get_method, register
from .ce import CE
from .glc import GLC
from .mfrw import MFRW
from .mlc import MLC
from .mslc import MSLC
from .mslg import MSLG
from .tmlc import TMLC

__all__ = [
    "CE",
    "GLC",
    "MFRW",
    "MLC",
    "MSLC",
    "MSLG",
    "MetaMethod",
    "TMLC",
    "available_methods",
    "get_method",
    "register",
]
