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


def snap_onto(
    geom: shapely.Geometry, target: shapely.Geometry, tolerance: float
) -> shapely.Geometry:
    """Move each vertex of ``geom`` within ``tolerance`` of ``target``'s outline onto it.

    Unlike :func:`shapely.snap`, which also inserts ``target``'s vertices into the
    segments of ``geom`` that pass near them, no vertex is added: a neighbour's corner
    beside a wall puts no kink in it.

    Args:
        geom: A polygon.
        target: The polygon(s) to snap onto.
        tolerance: How far a vertex may move (CRS units).

    Returns:
        ``geom`` with its near vertices on ``target``'s outline, made valid.
    """
    coords = shapely.get_coordinates(geom)
    outline = shapely.boundary(target)
    points = shapely.points(coords)
    near = shapely.dwithin(points, outline, tolerance) & ~shapely.intersects(points, outline)
    if not near.any():
        return geom
    nearest = shapely.get_coordinates(shapely.shortest_line(points[near], outline))[1::2]
    coords[near] = nearest
    return shapely.make_valid(shapely.set_coordinates(geom, coords))  # a copy: geom is kept
