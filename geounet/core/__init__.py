"""The pure core: tiling, instance splitting, object matching and metrics (no I/O, no torch)."""
