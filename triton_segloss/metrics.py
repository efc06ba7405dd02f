"""Segmentation metrics (confusion matrix, scores)."""
