"""Predicting a scene: options, the tile engine, local and dask executors, stitching, tile plans."""
