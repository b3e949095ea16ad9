"""Footprints for the places mappers put them: a JOSM-ready ``.osm`` file and GeoJSON.

``.osm``: OpenStreetMap XML written by libosmium (pyosmium), every footprint a new object
(negative ids, as JOSM expects for data to upload), a closed way tagged ``building=yes``,
or a ``type=multipolygon`` relation when it has courtyards; corners that touching roofs
share are one node, and a corner of one roof on a neighbour's wall is a node of that wall
too, so JOSM sees the roofs as joined, not as crossing. A ``source``
tag names the imagery and the model (from the footprints' provenance, or given).
GeoJSON: RFC 7946 (longitude / latitude, EPSG:4326, right-hand rings).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyogrio
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from geounet.core.provenance import Provenance
from geounet.errors import InputError
from geounet.footprints.merge import read_footprints
from geounet.io import layers
from geounet.io.atomic import atomic_path

COORDINATE_DIGITS = 7
"""Decimals of longitude and latitude written (OSM's own precision, about a centimetre)."""

GLUE_DEGREES = 0.5 * 10.0**-COORDINATE_DIGITS
"""How near a roof's corner must be to a neighbour's wall to become a corner of that wall
too (:func:`glue_walls`): half the precision written (about half a centimetre), nearer
than which rounding could put it on either side of the wall."""


@dataclass(frozen=True)
class Exported:
    """What an export wrote.

    Attributes:
        path: The file.
        buildings: Footprints written.
        skipped: Empty or non-polygon geometries left out.
        source: The ``source`` tag of an ``.osm`` file (empty for GeoJSON).
    """

    path: Path
    buildings: int
    skipped: int
    source: str = ""


def source_of(path: str | os.PathLike[str]) -> str:
    """The ``source`` tag for footprints: the imagery and the model, from their provenance.

    Returns:
        ``"<scene>; geounet <version>, model <model>"``, or ``"geounet"`` if the file does
        not say how it was made.
    """
    try:
        names = [str(name) for name, _ in pyogrio.list_layers(path)]
        layer = layers.FOOTPRINTS if layers.FOOTPRINTS in names else names[0]
        meta = pyogrio.read_info(path, layer=layer).get("layer_metadata") or {}
    except Exception:  # pyogrio raises several DataSourceError flavours  # noqa: BLE001
        meta = {}
    made = Provenance.from_tags(dict(meta))
    if made is None:
        return "geounet"
    return f"{made.scene}; geounet {made.version}, model {made.model}"


def _polygons(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The rows with polygon geometry, in EPSG:4326, each geometry valid.

    Invalid outlines are repaired (``make_valid``) and anything but polygons dropped from
    them; rows left with no polygon are dropped.
    """
    lonlat = gdf.to_crs("EPSG:4326")
    rows: list[int] = []
    geoms: list[BaseGeometry] = []
    for k, geom in enumerate(lonlat.geometry):
        if geom is None or geom.is_empty:
            continue
        geom = shapely.make_valid(geom) if not geom.is_valid else geom
        parts = [g for g in getattr(geom, "geoms", [geom]) if g.geom_type == "Polygon"]
        if parts:
            rows.append(k)
            geoms.append(shapely.MultiPolygon(parts) if len(parts) > 1 else parts[0])
    glued = glue_walls(np.asarray(geoms, dtype=object), GLUE_DEGREES)
    return lonlat.iloc[rows].set_geometry(list(glued), crs="EPSG:4326")


def glue_walls(geoms: npt.NDArray[np.object_], tolerance: float) -> npt.NDArray[np.object_]:
    """Each roof's corners that lie on a neighbour's wall added to that wall.

    Touching roofs cut apart share a wall, but where one roof's corner lies along the
    other's wall (a T), the other has no corner there. Rounded to the precision written
    (:data:`COORDINATE_DIGITS`), that corner can then fall a few millimetres inside the
    neighbour, and JOSM's validator reports the two as crossing buildings. With the corner
    in both outlines, it is one node of both ways (:class:`_Nodes`). The corners are
    added with :func:`shapely.snap`, which also moves a corner within ``tolerance`` of a
    neighbour's corner onto it.

    Args:
        geoms: (Multi)polygons.
        tolerance: How near a corner must be to a wall, in the coordinates' units.

    Returns:
        The outlines, each glued where that leaves it valid and of the same type.
    """
    if len(geoms) < 2:
        return geoms
    mine, theirs = shapely.STRtree(geoms).query(geoms, predicate="dwithin", distance=tolerance)
    apart = mine != theirs
    mine, theirs = mine[apart], theirs[apart]
    out = geoms.copy()
    for k in np.unique(mine):
        # the neighbours as glued so far: two corners within the tolerance of each other
        # meet at the first one's, instead of swapping places
        corners = shapely.multipoints(shapely.get_coordinates(out[theirs[mine == k]]))
        glued = shapely.snap(geoms[k], corners, tolerance)
        if glued.is_valid and glued.geom_type == geoms[k].geom_type:
            out[k] = glued
    return out


def export_geojson(gpkg: str | os.PathLike[str], out: Path, overwrite: bool = False) -> Exported:
    """Write footprints as RFC 7946 GeoJSON (EPSG:4326), atomically.

    Raises:
        InputError: If the footprints cannot be read.
        OutputExistsError: If ``out`` exists and ``overwrite`` is false.
    """
    gdf = read_footprints(gpkg)
    keep = _polygons(gdf)
    with atomic_path(out, overwrite=overwrite) as tmp:
        keep.to_file(
            tmp,
            driver="GeoJSON",
            layer="buildings",
            engine="pyogrio",
            RFC7946="YES",
            COORDINATE_PRECISION=COORDINATE_DIGITS,
        )
    return Exported(out, len(keep), len(gdf) - len(keep))


class _Nodes:
    """Node ids by rounded coordinate: a corner two roofs share is one node."""

    def __init__(self) -> None:
        self.ids: dict[tuple[float, float], int] = {}

    def ring(self, coords: list[tuple[float, ...]]) -> list[int]:
        refs: list[int] = []
        for x, y, *_ in coords[:-1]:
            key = (round(x, COORDINATE_DIGITS), round(y, COORDINATE_DIGITS))
            ref = self.ids.setdefault(key, -(len(self.ids) + 1))
            if not refs or refs[-1] != ref:  # corners closer than the precision merge
                refs.append(ref)
        while len(refs) > 1 and refs[-1] == refs[0]:
            refs.pop()
        return [*refs, refs[0]] if len(refs) >= 3 else []


def export_osm(
    gpkg: str | os.PathLike[str],
    out: Path,
    source: str | None = None,
    overwrite: bool = False,
) -> Exported:
    """Write footprints as a JOSM-ready OpenStreetMap XML file, atomically.

    Args:
        gpkg: Footprints (``<stem>.buildings.gpkg`` of ``geounet predict``, or any polygons).
        out: The ``.osm`` file.
        source: The ``source`` tag; default: the imagery and model of the footprints'
            provenance (:func:`source_of`).
        overwrite: Replace an existing ``out``.

    Returns:
        What was written.

    Raises:
        InputError: If ``out`` does not end in ``.osm`` or the footprints cannot be read.
        OutputExistsError: If ``out`` exists and ``overwrite`` is false.
    """
    import osmium
    from osmium.osm.mutable import Node, Relation, Way

    if out.suffix.lower() != ".osm":
        raise InputError(f"an OpenStreetMap file must end in .osm (got {out.name})")
    gdf = read_footprints(gpkg)
    geoms = list(_polygons(gdf).geometry)
    skipped = len(gdf) - len(geoms)
    tag = source if source is not None else source_of(gpkg)
    nodes = _Nodes()
    ways: list[tuple[list[int], dict[str, str]]] = []
    relations: list[tuple[list[tuple[str, int, str]], dict[str, str]]] = []
    building = {"building": "yes", "source": tag}
    written = 0
    for geom in geoms:
        polygons: list[Polygon] = list(getattr(geom, "geoms", [geom]))
        rings = [
            [(role, nodes.ring(list(ring.coords))) for role, ring in _rings(p)] for p in polygons
        ]
        rings = [[(role, refs) for role, refs in p if refs] for p in rings]
        rings = [p for p in rings if p and p[0][0] == "outer"]
        if not rings:
            skipped += 1
            continue
        written += 1
        if len(rings) == 1 and len(rings[0]) == 1:
            ways.append((rings[0][0][1], building))
            continue
        members = []
        for part in rings:
            for role, refs in part:
                ways.append((refs, {}))
                members.append(("w", -len(ways), role))
        relations.append((members, {"type": "multipolygon", **building}))
    with atomic_path(out, overwrite=overwrite) as tmp:
        writer = osmium.SimpleWriter(str(tmp))
        try:
            for (lon, lat), ref in nodes.ids.items():
                writer.add_node(Node(id=ref, location=(lon, lat)))
            for k, (refs, tags) in enumerate(ways, start=1):
                writer.add_way(Way(id=-k, nodes=refs, tags=tags))
            for k, (members, tags) in enumerate(relations, start=1):
                writer.add_relation(Relation(id=-k, members=members, tags=tags))
        finally:
            writer.close()
    return Exported(out, written, skipped, tag)


def _rings(polygon: Polygon) -> list[tuple[str, shapely.LinearRing]]:
    """The outer ring (counter-clockwise) and the inner ones (clockwise), with their roles."""
    oriented = shapely.geometry.polygon.orient(polygon, sign=1.0)
    return [("outer", oriented.exterior), *(("inner", r) for r in oriented.interiors)]
