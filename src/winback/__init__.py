"""winback: an open-source, self-hostable customer win-back and retention engine."""

__version__ = "0.1.0"
