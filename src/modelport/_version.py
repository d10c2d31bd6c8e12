"""The package version: the one module every room may import for it."""

__version__ = "0.1.0"
