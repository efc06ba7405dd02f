"""Recipes of the distance-map losses: none of the blog posts has one (kept for the family layout)."""

__all__: list = []
