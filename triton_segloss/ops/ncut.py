"""Custom ops of this family (to be written)."""
