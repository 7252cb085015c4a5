"""Edda's ``edda.app`` module: the application object."""

from edda.runtime.app import EddaApp as EddaApp

__all__ = ("EddaApp",)
