"""Merge the footprint GeoPackages of several scenes into one, tagged by scene id."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
from pyproj import CRS
from pyproj.exceptions import CRSError

from geounet.errors import InputError
from geounet.footprints.vectorize import write_footprints
from geounet.io import layers
from geounet.io.raster import check_outputs

LAYER = layers.FOOTPRINTS
FOOTPRINT_SUFFIX = ".buildings.gpkg"


def scene_id_of(path: str | os.PathLike[str]) -> str:
    """Default scene id of a footprint file: its name without ``.buildings.gpkg``."""
    name = Path(path).name
    return name[: -len(FOOTPRINT_SUFFIX)] if name.endswith(FOOTPRINT_SUFFIX) else Path(name).stem


def read_footprints(path: str | os.PathLike[str]) -> gpd.GeoDataFrame:
    """Read the ``buildings`` layer (or the only layer) of a footprint file.

    Raises:
        InputError: If the file is missing, unreadable or has no CRS.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"footprints {p} do not exist; check the path")
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(p)]
        layer = LAYER if LAYER in layers else layers[0]
        gdf = pyogrio.read_dataframe(p, layer=layer)
    except Exception as exc:  # pyogrio raises several DataSourceError flavours
        raise InputError(f"{p} is not a readable vector file ({exc})") from exc
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.crs is None:
        raise InputError(f"{p} has no geometry with a coordinate reference system")
    return gdf


def merge_footprints(
    items: Sequence[tuple[str, str | os.PathLike[str]]],
    out: str | os.PathLike[str],
    crs: Any = None,
    overwrite: bool = False,
) -> gpd.GeoDataFrame:
    """Concatenate footprint files into one GeoPackage layer with a ``scene_id`` column.

    Args:
        items: ``(scene_id, footprints path)`` pairs, in output order.
        out: The merged GeoPackage (layer ``buildings``).
        crs: CRS of the output; default: the first file's. Other files are reprojected.
        overwrite: Replace an existing output.

    Returns:
        The merged footprints.

    Raises:
        InputError: If there is nothing to merge, an id repeats or a file is unreadable.
        OutputExistsError: If ``out`` exists and ``overwrite`` is false.
        OutputError: If it cannot be written.
    """
    if not items:
        raise InputError("nothing to merge; pass one or more footprint files")
    ids = [scene for scene, _ in items]
    dupes = sorted({s for s in ids if ids.count(s) > 1})
    if dupes:
        raise InputError(f"scene ids repeat in the merge: {', '.join(dupes)}")
    out = Path(out)
    check_outputs([out], overwrite)
    frames = [read_footprints(path) for _, path in items]
    try:
        target = CRS.from_user_input(crs if crs is not None else frames[0].crs)
    except CRSError as exc:
        raise InputError(f"unknown CRS {crs!r}; use e.g. EPSG:4326") from exc
    parts = []
    for (scene, _), gdf in zip(items, frames, strict=True):
        gdf = gdf.to_crs(target)
        gdf.insert(0, "scene_id", scene)
        parts.append(gdf)
    merged = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=target)
    write_footprints(merged, out, overwrite)  # layer `buildings`, styled, atomically
    return merged
