"""Count the buildings of an ``.osm`` file that JOSM's validator would warn about.

Reads the file back with GDAL's OSM driver, as ``geounet export``'s tests do, and, in
the local UTM zone, counts the pairs of buildings whose areas overlap (by more than
``--min-overlap`` square metres: touching is fine; JOSM: crossing buildings) and the
corners that lie on a neighbouring building's wall (within ``--near`` metres) without
being a node of it. It also counts the buildings with a corner between 0.001 and 10
degrees off a right angle, measured in Web Mercator (JOSM's default view), which JOSM's
"almost right angle buildings" test reports (its defaults).

Usage:
  geounet export F.buildings.gpkg --to osm
  python scripts/osm_crossings.py F.osm
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyogrio
import shapely
from geopandas import GeoSeries

from geounet.core.shape import right_angle_offsets


def buildings(path: Path) -> GeoSeries:
    """The buildings of an ``.osm`` file, in the local UTM zone."""
    # GDAL's own node index takes positive ids only; new objects have negative ones
    pyogrio.set_gdal_config_options({"OSM_USE_CUSTOM_INDEXING": "NO"})
    try:
        frame = pyogrio.read_dataframe(path, layer="multipolygons")
    finally:
        pyogrio.set_gdal_config_options({"OSM_USE_CUSTOM_INDEXING": None})
    return frame.geometry.to_crs(frame.geometry.estimate_utm_crs())


def crossings(geoms: GeoSeries, min_overlap: float, near: float) -> tuple[int, int, int]:
    """Pairs touching or overlapping, pairs overlapping, and corners on a wall not its node."""
    polys = geoms.to_numpy()
    a, b = shapely.STRtree(polys).query(polys, predicate="intersects")
    a, b = a[a < b], b[a < b]
    overlap = shapely.area(shapely.intersection(polys[a], polys[b]))
    loose = 0
    for i, j in zip(a, b, strict=True):
        for mine, theirs in ((polys[i], polys[j]), (polys[j], polys[i])):
            rings = shapely.get_exterior_ring(shapely.get_parts(mine))
            corners = np.unique(shapely.get_coordinates(rings), axis=0)
            nodes = {tuple(c) for c in shapely.get_coordinates(theirs)}
            walls = shapely.boundary(theirs)
            on = shapely.distance(shapely.points(corners), walls) <= near
            loose += sum(1 for c, k in zip(corners, on, strict=True) if k and tuple(c) not in nodes)
    return len(a), int((overlap > min_overlap).sum()), loose


ALMOST_SQUARE_DEG = (0.001, 10.0)
"""JOSM's ``validator.RightAngleBuilding.minimumDelta`` and ``maximumDelta`` defaults."""


def almost_square(geoms: GeoSeries) -> int:
    """Buildings with a corner that JOSM reports as almost, but not quite, a right angle."""
    low, high = ALMOST_SQUARE_DEG
    flagged = 0
    for geom in geoms.to_crs("EPSG:3857"):
        off = np.concatenate([right_angle_offsets(part) for part in shapely.get_parts(geom)])
        flagged += bool(np.any((off > low) & (off < high)))
    return flagged


def main(argv: list[str] | None = None) -> int:
    """Print the counts of each file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("osm", type=Path, nargs="+")
    parser.add_argument("--min-overlap", type=float, default=1e-4, help="m2 (default 1 cm2)")
    parser.add_argument("--near", type=float, default=0.02, help="m (default 2 cm)")
    args = parser.parse_args(argv)
    for path in args.osm:
        geoms = buildings(path)
        pairs, crossing, loose = crossings(geoms, args.min_overlap, args.near)
        print(
            f"{path}: {len(geoms)} buildings, {pairs} pairs touching or overlapping, "
            f"{crossing} overlapping by more than {args.min_overlap:g} m2, {loose} corners "
            f"within {args.near:g} m of a neighbour's wall that are not a node of it, "
            f"{almost_square(geoms)} buildings with a corner {ALMOST_SQUARE_DEG[0]:g}-"
            f"{ALMOST_SQUARE_DEG[1]:g} degrees off a right angle"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
