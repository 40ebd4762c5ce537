"""The methods: one module each, on :class:`MetaMethod` and a registry."""

from ._base import MetaMethod, available_methods, get_method, register
from .ce import CE
from .glc import GLC
from .mlc import MLC

__all__ = ["CE", "GLC", "MLC", "MetaMethod", "available_methods", "get_method", "register"]
