"""The threshold grids of geounet: one sweep for reports, its inner part for choices."""

THRESHOLD_GRID: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))
"""Building thresholds swept by ``geounet evaluate``: 0.05, 0.10, ..., 0.95."""

CHOICE_THRESHOLDS: tuple[float, ...] = THRESHOLD_GRID[1:-1]
"""Building thresholds a model's card may be given (``geounet calibrate``): 0.10 to 0.90."""

BODY_THRESHOLDS: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
"""Body thresholds tried when a model's thresholds are chosen on validation data."""
