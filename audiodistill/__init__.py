"""audiodistill: pseudo-label with a speech teacher, distill compact students, measure them."""

__version__ = "0.1.0"
