"""Edda's ``edda.compensation`` module: saga compensation."""

from edda.runtime.compensation import compensation as compensation
from edda.runtime.compensation import on_failure as on_failure
from edda.runtime.compensation import register_compensation as register_compensation

__all__ = ("compensation", "on_failure", "register_compensation")
