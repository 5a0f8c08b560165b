"""The distribution's version (the User-Agent says it)."""

__version__ = "0.1.0"
