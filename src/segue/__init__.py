"""segue: playlist continuation and next-track prediction, evaluated honestly."""

__version__ = "0.2.0"
