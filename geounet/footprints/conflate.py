"""Which predicted buildings are already mapped: conflation with an existing building layer.

Predicted footprints are matched one to one to the buildings of an existing layer (an OSM
extract, Microsoft or Google open buildings, a city's layer) by the rule ``geounet
evaluate`` scores with (:func:`geounet.core.objects.match_objects`: greedy by IoU, a match
needs IoU >= 0.5). Each predicted footprint is then ``match`` (already mapped), ``conflict``
(overlaps a mapped building without matching it: drawn differently, merged or split) or
``new``; each existing building inside the predictions' area that no prediction matched
is ``missing``. A mapper uploads the new ones, reviews the conflicts and looks at what
is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

from geounet.core.objects import greedy_matches, pair_ious
from geounet.errors import InputError
from geounet.footprints.merge import read_footprints
from geounet.footprints.vectorize import area_m2
from geounet.io import layers
from geounet.io.atomic import atomic_path
from geounet.io.styles import style_conflation

STATUSES = ("new", "match", "conflict", "missing")


@dataclass(frozen=True)
class Conflation:
    """The result of a conflation.

    Attributes:
        frame: Predicted and existing footprints with ``status``, ``origin``, ``iou``
            and ``area_m2``, in the predictions' CRS.
        counts: Footprints per status.
    """

    frame: gpd.GeoDataFrame
    counts: dict[str, int]


def read_existing(
    path: str | os.PathLike[str], crs: object, bounds: tuple[float, ...]
) -> gpd.GeoSeries:
    """The polygons of an existing building layer around ``bounds``, in ``crs``.

    Only the features whose boxes meet the predictions' box are read, so a country-wide
    extract costs little.

    Raises:
        InputError: If the file is missing, unreadable or has no CRS.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"existing buildings {p} do not exist; check the path")
    try:
        info = pyogrio.read_info(p)
        src_crs = info.get("crs")
        if src_crs is None:
            raise InputError(f"{p} has no coordinate reference system")
        box = gpd.GeoSeries([shapely.box(*bounds)], crs=crs).to_crs(src_crs).total_bounds
        frame = pyogrio.read_dataframe(p, bbox=tuple(box))
    except InputError:
        raise
    except Exception as exc:  # pyogrio raises several DataSourceError flavours
        raise InputError(f"{p} is not a readable vector file ({exc})") from exc
    geoms = frame.geometry.to_crs(crs)
    polygons = geoms[geoms.notna() & ~geoms.is_empty]
    polygons = polygons[polygons.geom_type.isin(["Polygon", "MultiPolygon"])]
    return polygons.make_valid().reset_index(drop=True)


def conflate(
    predicted: gpd.GeoDataFrame, existing: gpd.GeoSeries, iou_threshold: float = 0.5
) -> Conflation:
    """Mark each predicted footprint new, match or conflict, and each unmatched existing one.

    Args:
        predicted: Predicted footprints.
        existing: Existing buildings, in the same CRS.
        iou_threshold: Minimum IoU of a match.

    Returns:
        The marked footprints (predicted first, then the missing existing ones) and counts.
    """
    pred = np.asarray(predicted.geometry.to_list(), dtype=object)
    have = np.asarray(existing.to_list(), dtype=object)
    pi, ei, pair_iou = pair_ious(pred, have)  # every overlapping pair, once
    iou = np.zeros(len(pred))
    np.maximum.at(iou, pi, pair_iou)  # each prediction's best overlap (0: none)
    status = np.where(iou > 0, "conflict", "new").astype(object)
    matched_existing = np.zeros(len(have), dtype=bool)
    for p, e, value in greedy_matches(pi, ei, pair_iou, iou_threshold):
        status[p], iou[p], matched_existing[e] = "match", value, True
    area = shapely.union_all(pred).envelope if len(pred) else shapely.Polygon()
    missing = [k for k in np.flatnonzero(~matched_existing) if have[k].intersects(area)]
    frame = gpd.GeoDataFrame(
        {
            "status": [*status, *(["missing"] * len(missing))],
            "origin": ["predicted"] * len(pred) + ["existing"] * len(missing),
            "iou": [*np.round(iou, 4), *([0.0] * len(missing))],
        },
        geometry=[*pred, *have[missing]],
        crs=predicted.crs,
    )
    frame["area_m2"] = area_m2(frame).round(2)
    counts = {s: int((frame["status"] == s).sum()) for s in STATUSES}
    return Conflation(frame, counts)


def conflate_files(
    footprints: str | os.PathLike[str],
    existing: str | os.PathLike[str],
    out: Path,
    iou_threshold: float = 0.5,
    overwrite: bool = False,
) -> Conflation:
    """Conflate a footprint file with an existing building layer; write a styled GeoPackage.

    Args:
        footprints: Predicted footprints (``<stem>.buildings.gpkg``).
        existing: Existing buildings (any vector format and CRS).
        out: The GeoPackage to write (layer ``conflation``, styled for QGIS).
        iou_threshold: Minimum IoU of a match, in (0, 1].
        overwrite: Replace an existing ``out``.

    Returns:
        The conflation.

    Raises:
        InputError: If an input is unreadable or the threshold is out of range.
        OutputExistsError: If ``out`` exists and ``overwrite`` is false.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise InputError(f"--iou must be in (0, 1], got {iou_threshold}")
    if out.suffix.lower() != ".gpkg":
        raise InputError(f"the conflation is a GeoPackage: --out must end in .gpkg ({out.name})")
    predicted = read_footprints(footprints)
    predicted = predicted[predicted.geometry.notna() & ~predicted.geometry.is_empty]
    bounds = tuple(predicted.total_bounds) if len(predicted) else (0.0, 0.0, 0.0, 0.0)
    have = read_existing(existing, predicted.crs, bounds)
    result = conflate(predicted, have, iou_threshold)
    with atomic_path(out, overwrite=overwrite) as tmp:
        result.frame.to_file(
            tmp,
            layer=layers.CONFLATION,
            driver="GPKG",
            engine="pyogrio",
            dataset_options=layers.GPKG_OPTIONS,
        )
        style_conflation(tmp)
    return result
