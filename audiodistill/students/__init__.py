"""Students: compact models distilled from a teacher's pseudo-labels (see registry.py)."""
