"""Footprints from probability rasters: vectorising, regularising, merging GeoPackages."""
