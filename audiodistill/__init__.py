"""audiodistill: pseudo-label with a speech teacher, distill compact students, measure them."""

__version__ = "0.1.0"


def load_model(path):
    """Load an exported student directory for inference (see audiodistill.students.registry)."""
    from audiodistill.students.registry import load_model as load

    return load(path)
