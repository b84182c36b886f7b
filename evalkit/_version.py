"""The installed evalkit version."""

__version__ = "0.1.0"
