"""The names of the GeoPackage layers geounet writes: one place for each."""

FOOTPRINTS = "buildings"
"""Footprints of ``geounet predict``, ``vectorize`` and ``merge``."""

OBJECTS = "objects"
"""True positives, false positives and false negatives of ``geounet evaluate``."""

TILES = "tiles"
"""The tiles of a tile plan (``geounet plan``)."""

PLAN = "plan"
"""The record of a tile plan (``geounet plan``)."""
