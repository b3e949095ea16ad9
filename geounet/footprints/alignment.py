"""Squared footprints turned to the direction of the roofs they touch.

Squaring (:func:`~geounet.footprints.vectorize.regularize_footprints`) gives each
footprint its own main direction, read from its traced outline; two roofs sharing a wall
come out a degree or a few apart, so their shared wall is two walls that cross, and
cutting them apart leaves slanted corners. Turning each footprint, about its centroid, to
the direction that carries the most wall among it and its neighbours (when that is within
a few degrees of its own) makes the shared walls parallel again.

buildingregulariser has the same step (``neighbor_alignment``), but it counts ``90 - d``
as the perpendicular of a direction ``d`` (which is ``d`` itself, directions being taken
modulo 90 degrees), so a neighbour at 30 degrees pulls a roof at 58 to 60; and it runs
inside one call, while geounet squares each footprint at its own tolerance.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import shapely
from shapely import affinity

from geounet.core.shape import direction_offset


def align_to_neighbours(
    geoms: npt.NDArray[np.object_],
    directions: npt.ArrayLike,
    reach: float,
    max_rotation: float,
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.float64]]:
    """Turn each outline to its neighbourhood's main direction.

    Each outline's neighbourhood is itself and the outlines within ``reach``; each
    direction there is weighed by the perimeters of the outlines that have it (modulo
    90 degrees, to the nearest degree). The outline turns, about its centroid, to the
    heaviest direction within ``max_rotation`` of its own (its own, if none is). Every
    outline is turned by its neighbours' directions before any is turned.

    Args:
        geoms: Squared outlines (polygons), in a projected CRS.
        directions: Each outline's main direction, degrees (modulo 90).
        reach: How far a neighbour may be, in CRS units.
        max_rotation: The largest turn, in degrees.

    Returns:
        The outlines, turned, and each one's new direction.
    """
    geoms = np.asarray(geoms, dtype=object)
    own = np.asarray(directions, dtype=float) % 90.0
    out, new = geoms.copy(), own.copy()
    if len(geoms) < 2 or max_rotation <= 0:
        return out, new
    weight = shapely.length(geoms)
    binned = np.round(own) % 90
    me, them = shapely.STRtree(geoms).query(geoms, predicate="dwithin", distance=reach)
    for i in np.unique(me):
        near = them[me == i]
        votes = np.bincount(binned[near].astype(int), weights=weight[near], minlength=90)
        for candidate in np.argsort(-votes, kind="stable"):
            if votes[candidate] <= 0:
                break
            turn = float(direction_offset(own[i], candidate))
            if abs(turn) <= max_rotation:
                if turn:
                    out[i] = affinity.rotate(geoms[i], turn, origin="centroid")
                    new[i] = candidate
                break
    return out, new
