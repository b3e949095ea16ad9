"""Small polygon helpers shared by the footprint steps."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import Polygon


def iou(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The IoU of each pair of polygons (shapely broadcasts: ``b`` may be one polygon)."""
    inter = shapely.area(shapely.intersection(a, b))
    union = shapely.area(a) + shapely.area(b) - inter
    return np.asarray(inter / np.maximum(union, 1e-12))


def largest_polygon(geom: shapely.Geometry) -> Polygon:
    """The largest polygon of a geometry (itself, if a polygon); empty if it has none."""
    parts = [g for g in getattr(geom, "geoms", [geom]) if g.geom_type == "Polygon"]
    return max(parts, key=lambda g: g.area) if parts else Polygon()
