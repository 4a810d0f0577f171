"""syncd: keep in touch with the people in your calendar."""

__version__ = "0.1.0"
