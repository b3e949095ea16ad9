"""The names of the GeoPackage layers geounet writes: one place for each."""

FOOTPRINTS = "buildings"
"""Footprints of ``geounet predict``, ``vectorize`` and ``merge``."""

OBJECTS = "objects"
"""True positives, false positives and false negatives of ``geounet evaluate``."""

CONFLATION = "conflation"
"""Predicted and existing footprints by their conflation status (``geounet conflate``)."""

TILES = "tiles"
"""The tiles of a tile plan (``geounet plan``)."""

PLAN = "plan"
"""The record of a tile plan (``geounet plan``)."""

GPKG_OPTIONS = {"VERSION": "1.2"}
"""GDAL creation options of every GeoPackage geounet writes.

GDAL 3.7+ writes GeoPackage 1.4 by default, which QGIS 3.22 LTS (GDAL 3.6) opens with a
warning that the file "may only be partially supported"; geounet uses nothing of 1.3 or
1.4, so it writes 1.2, which every QGIS LTS reads without a warning."""
