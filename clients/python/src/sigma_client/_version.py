"""The package version, in one place (pyproject.toml reads it from here)."""

__version__ = "1.3.0"
