"""Thin slivers and notches that cutting touching roofs apart leaves, opened and closed away.

Where two squared roofs overlap, :func:`~geounet.footprints.vectorize.remove_overlaps`
cuts one along the other's outline. Where the two are not parallel (old towns, where
neighbours stand at 20 or 30 degrees to each other), or where one is cut along several
neighbours, the cut leaves teeth, wedges and notches a few pixels wide: two, three or
four corners each, often far from right angles, that no roof has. A morphological opening
(the outline shrunk by a radius, then grown back by it, both mitred so that corners stay
sharp) removes the parts thinner than twice the radius; a closing (grown, then shrunk)
fills the notches narrower than that. Neither may make an overlap. Before that, the
corners the cut leaves a hair's breadth from the line of their neighbours (floating-point
leftovers, micrometres off, which JOSM's validator reports as very close points) go.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely

from geounet.core.shape import corners
from geounet.footprints.geometry import iou

SLIVER_RADII_PX: tuple[float, ...] = (1.0, 2.0, 3.0)
"""Radii tried, in pixels of the model: parts and notches up to six pixels wide can go."""

SLIVER_FIT = 0.97
"""An opened or closed outline must overlap the one it came from with at least this IoU."""

LEFTOVER_PX = 1e-5
"""Corners within this many pixels of the line through their neighbours are leftovers."""

_MITRE = {"join_style": "mitre", "mitre_limit": 10.0}


def opening(geom: shapely.Geometry, radius: float, within: bool = False) -> shapely.Geometry:
    """``geom`` shrunk by ``radius``, then grown back by it (mitred).

    Mitred growth can reach past ``geom`` at a corner that the shrinking made (by 0.009
    m2 on one of Banepa's footprints, ``tests/test_slivers.py``); ``within`` cuts the
    result to ``geom``, at the cost of the corners that the cut makes.

    Args:
        geom: A polygon.
        radius: The opening radius, in its units.
        within: Keep the result within ``geom``.

    Returns:
        The opened geometry (possibly in parts, or empty), collinear points dropped.
    """
    grown = shapely.buffer(shapely.buffer(geom, -radius, **_MITRE), radius, **_MITRE)
    return shapely.simplify(shapely.intersection(grown, geom) if within else grown, 0.0)


def closing(geom: shapely.Geometry, radius: float) -> shapely.Geometry:
    """``geom`` grown by ``radius``, then shrunk back by it (mitred), collinear points dropped."""
    shrunk = shapely.buffer(shapely.buffer(geom, radius, **_MITRE), -radius, **_MITRE)
    return shapely.simplify(shrunk, 0.0)


def _fewer(geom: shapely.Geometry, than: int) -> bool:
    """Whether ``geom`` is one valid polygon with fewer than ``than`` corners."""
    return geom.geom_type == "Polygon" and geom.is_valid and corners(geom) < than


def tidy_cut(
    geoms: npt.NDArray[np.object_],
    pixel: float,
    radii_px: Sequence[float] = SLIVER_RADII_PX,
    fit: float = SLIVER_FIT,
    close: bool = True,
) -> npt.NDArray[np.object_]:
    """Each footprint opened, then closed, at the radius that leaves it fewest corners.

    First the corners within :data:`LEFTOVER_PX` of the line through their neighbours are
    dropped (Douglas-Peucker at that tolerance, keeping each outline valid).

    An opened (closed) outline replaces its footprint only if it is one polygon with
    fewer corners, overlaps the footprint with an IoU of at least ``fit``, still touches
    every footprint that this one touched (two roofs that shared a wall share some of it
    still) and overlaps none. Where it would overlap one, it is first cut to the
    footprint (opening: :func:`opening` can reach past a corner it makes) or cut along
    the others (closing), and kept if it still has fewer corners. Of equally few corners,
    the smallest radius wins.

    Args:
        geoms: Footprints (polygons, in a projected CRS), none overlapping another.
        pixel: The model's pixel size in CRS units.
        radii_px: Radii to try, in pixels.
        fit: The least IoU of a tidied outline with its footprint.
        close: Close the notches too, after the opening (``False``: open only).

    Returns:
        The footprints, in their order; those not improved unchanged.
    """
    out = np.asarray(geoms, dtype=object).copy()
    if not len(out):
        return out
    out = shapely.simplify(out, LEFTOVER_PX * pixel, preserve_topology=True)
    contact = pixel * 1e-3  # touching, give or take floating point
    tree = shapely.STRtree(out)

    def overlapped(i: int, geom: shapely.Geometry, reach: float) -> shapely.Geometry | None:
        near = [j for j in tree.query(geom, "dwithin", reach) if j != i]
        others = shapely.union_all(out[near]) if near else None
        if others is None or shapely.intersection(geom, others).area <= contact**2:
            return None
        return others

    for step in ("open", "close") if close else ("open",):
        for i, geom in enumerate(out):
            best, fewest = geom, corners(geom)
            if fewest <= 4:
                continue
            touching = [j for j in tree.query(geom, "dwithin", contact) if j != i]
            for radius in radii_px:
                reach = radius * pixel
                tidied = (opening if step == "open" else closing)(geom, reach)
                if not _fewer(tidied, fewest):  # most tries end here, cheaply
                    continue
                others = overlapped(i, tidied, reach)
                if others is not None:
                    tidied = (
                        opening(geom, reach, within=True)
                        if step == "open"
                        else shapely.simplify(shapely.difference(tidied, others), 0.0)
                    )
                    if not _fewer(tidied, fewest):
                        continue
                if iou(tidied, geom) < fit or not all(
                    shapely.dwithin(tidied, out[j], contact) for j in touching
                ):
                    continue
                best, fewest = tidied, corners(tidied)
            out[i] = best
    return out
