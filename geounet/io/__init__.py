"""Reading and writing: rasters, the atomic writer, styles, catalogues."""
