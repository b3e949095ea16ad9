"""The threshold grids of geounet: one sweep for reports, its inner part for choices."""

THRESHOLD_GRID: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))
"""Building thresholds swept by ``geounet evaluate``: 0.05, 0.10, ..., 0.95."""

CHOICE_THRESHOLDS: tuple[float, ...] = THRESHOLD_GRID[1:-1]
"""Building thresholds a model's card may be given (``geounet calibrate``): 0.10 to 0.90."""

BODY_THRESHOLDS: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
"""Body thresholds tried when a model's thresholds are chosen on validation data."""

SEED_AREAS_M2: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0)
"""Smallest seed areas (m2) tried when a model's thresholds are chosen on validation data.

A watershed seed smaller than this does not start a footprint of its own. A body channel
that learns each roof's depth seeds a roof with about half its area, so a seed of a few
square metres is a roof, and a speck is a dip in one roof's depth."""

DEFAULT_SEED_AREA_M2 = 0.5
"""The smallest seed of a card that names none: a quarter of the default ``--min-area``,
the rule before seeds were chosen on validation data."""

MIN_CONFIDENCES: tuple[float, ...] = (0.0, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75)
"""Smallest footprint confidences tried when a model's thresholds are chosen on validation
data (0: every footprint kept).

A footprint's confidence is the mean building probability of its pixels. At a building
threshold below 0.5 a faint patch (a shadow, a car park, a roof the model half sees)
can pass the threshold yet stay faint throughout; dropping footprints below a
confidence removes such false ones without shrinking the mask of the others."""
