"""QGIS projects of geounet's outputs."""
