"""The package version, at the bottom of the layers (checkpoints record it)."""

__version__ = "0.1.0"
