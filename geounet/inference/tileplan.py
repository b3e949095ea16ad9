"""Tile plans as GeoPackages: write a scene's tiles for GIS users, read them back exactly.

``geounet plan`` decides how a scene is cut into overlapping tiles on the model's working
grid and stores the decision in a GeoPackage with two layers:

* ``tiles``: one polygon per tile in the map coordinates of the working grid (loadable in
  QGIS), with the tile id, its position in the grid of tiles, its pixel window (which may
  reach into the mirrored border) and the window clipped to the scene;
* ``plan``: a one-row attribute table with the plan's parameters, the working grid's CRS
  and transform and free-form metadata, from which :func:`read_plan` rebuilds the exact
  :class:`~geounet.core.tiling.TilePlan` that ``geounet predict --plan`` then follows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
from affine import Affine
from pyproj import CRS
from shapely.geometry import Polygon

from geounet.core.tiling import TilePlan
from geounet.errors import InputError
from geounet.io import layers
from geounet.io.atomic import atomic_path
from geounet.io.qml import tiles_qml
from geounet.io.raster import check_outputs
from geounet.io.styles import write_layer_style

TILES_LAYER = layers.TILES
PLAN_LAYER = layers.PLAN
PLAN_FORMAT = "geounet-tile-plan"
PLAN_VERSION = 1


@dataclass(frozen=True)
class StoredPlan:
    """A tile plan read from a GeoPackage, with the grid it was made for.

    Attributes:
        plan: The tile plan.
        crs: CRS of the working grid.
        transform: Affine transform of the working grid.
        meta: Free-form metadata stored with the plan (scene, model, pixel sizes...).
    """

    plan: TilePlan
    crs: CRS
    transform: Affine
    meta: dict[str, Any]


def tiles_frame(plan: TilePlan, crs: Any, transform: Affine) -> gpd.GeoDataFrame:
    """One polygon per tile, in the map coordinates of the working grid.

    Args:
        plan: The tile plan.
        crs: CRS of the working grid (anything pyproj understands).
        transform: Affine transform of the working grid.

    Returns:
        Columns ``tile_id``, ``tile_row``, ``tile_col`` (position in the grid of tiles),
        ``row``, ``col``, ``height``, ``width``, ``row_stop``, ``col_stop`` (pixel window,
        possibly reaching into the mirrored border), ``scene_row``, ``scene_col``,
        ``scene_row_stop``, ``scene_col_stop`` (the window clipped to the scene) and the
        tile polygon.
    """
    n_cols = len(plan.col_starts)
    records: list[dict[str, int]] = []
    geoms: list[Polygon] = []
    for t in plan:
        records.append(
            {
                "tile_id": t.index,
                "tile_row": t.index // n_cols,
                "tile_col": t.index % n_cols,
                "row": t.row,
                "col": t.col,
                "height": t.height,
                "width": t.width,
                "row_stop": t.row_stop,
                "col_stop": t.col_stop,
                "scene_row": max(t.row, 0),
                "scene_col": max(t.col, 0),
                "scene_row_stop": min(t.row_stop, plan.height),
                "scene_col_stop": min(t.col_stop, plan.width),
            }
        )
        corners = [
            (t.col, t.row),
            (t.col_stop, t.row),
            (t.col_stop, t.row_stop),
            (t.col, t.row_stop),
        ]
        geoms.append(Polygon([transform * c for c in corners]))
    frame = pd.DataFrame.from_records(records, columns=_TILE_COLUMNS).astype("int64")
    return gpd.GeoDataFrame(frame, geometry=geoms, crs=CRS.from_user_input(crs))


_TILE_COLUMNS = [
    "tile_id",
    "tile_row",
    "tile_col",
    "row",
    "col",
    "height",
    "width",
    "row_stop",
    "col_stop",
    "scene_row",
    "scene_col",
    "scene_row_stop",
    "scene_col_stop",
]


def plan_record(
    plan: TilePlan, crs: Any, transform: Affine, meta: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The one row of the ``plan`` layer: everything needed to rebuild the plan."""
    return {
        "format": PLAN_FORMAT,
        "version": PLAN_VERSION,
        "height": plan.height,
        "width": plan.width,
        "tile_height": plan.tile_height,
        "tile_width": plan.tile_width,
        "overlap": plan.overlap,
        "border": plan.border,
        "row_starts": json.dumps(list(plan.row_starts)),
        "col_starts": json.dumps(list(plan.col_starts)),
        "tiles": len(plan),
        "crs": CRS.from_user_input(crs).to_wkt(),
        "transform": json.dumps(list(transform)[:6]),
        "meta": json.dumps(dict(meta or {}), sort_keys=True, default=str),
    }


def write_plan(
    plan: TilePlan,
    crs: Any,
    transform: Affine,
    path: str | os.PathLike[str],
    meta: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a tile plan as a GeoPackage (layers ``tiles`` and ``plan``), atomically.

    Args:
        plan: The tile plan of the working grid.
        crs: CRS of the working grid.
        transform: Affine transform of the working grid.
        path: The GeoPackage to write.
        meta: JSON-serialisable metadata stored with the plan.
        overwrite: Replace an existing file.

    Returns:
        The path written.

    Raises:
        OutputExistsError: If ``path`` exists and ``overwrite`` is false.
        OutputError: If it cannot be written.
    """
    out = Path(path)
    check_outputs([out], overwrite)
    tiles = tiles_frame(plan, crs, transform)
    record = pd.DataFrame([plan_record(plan, crs, transform, meta)])
    with atomic_path(out, overwrite=overwrite) as tmp:
        pyogrio.write_dataframe(
            tiles, tmp, layer=TILES_LAYER, driver="GPKG", dataset_options=layers.GPKG_OPTIONS
        )
        pyogrio.write_dataframe(record, tmp, layer=PLAN_LAYER, driver="GPKG", append=False)
        write_layer_style(tmp, TILES_LAYER, tiles_qml(), name="geounet tile plan")
    return out


def read_stored_plan(path: str | os.PathLike[str]) -> StoredPlan:
    """Read a plan written by :func:`write_plan`, with its grid and metadata.

    Raises:
        InputError: If the file is missing or not a geounet tile plan.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"tile plan {p} does not exist; make it with `geounet plan`")
    try:
        layers = {str(name) for name, _ in pyogrio.list_layers(p)}
    except Exception as exc:  # pyogrio raises several DataSourceError flavours
        raise InputError(f"{p} is not a GeoPackage tile plan (made by `geounet plan`)") from exc
    if not {TILES_LAYER, PLAN_LAYER} <= layers:
        raise InputError(
            f"{p} has no '{TILES_LAYER}' and '{PLAN_LAYER}' layers; "
            "it is not a tile plan made by `geounet plan`"
        )
    rows = pyogrio.read_dataframe(p, layer=PLAN_LAYER)
    if len(rows) != 1 or rows.iloc[0].get("format") != PLAN_FORMAT:
        raise InputError(f"{p}: the '{PLAN_LAYER}' layer is not a geounet tile plan")
    r = rows.iloc[0]
    try:
        if int(r["version"]) > PLAN_VERSION:
            raise InputError(
                f"{p} was written by a newer geounet (plan version {int(r['version'])}); "
                "upgrade geounet"
            )
        plan = TilePlan(
            height=int(r["height"]),
            width=int(r["width"]),
            tile_height=int(r["tile_height"]),
            tile_width=int(r["tile_width"]),
            overlap=int(r["overlap"]),
            border=int(r["border"]),
            row_starts=tuple(int(v) for v in json.loads(r["row_starts"])),
            col_starts=tuple(int(v) for v in json.loads(r["col_starts"])),
        )
        crs = CRS.from_wkt(r["crs"])
        transform = Affine(*json.loads(r["transform"]))
        meta = json.loads(r["meta"]) if r.get("meta") else {}
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{p}: damaged tile plan ({exc})") from exc
    if len(plan) != int(r["tiles"]):
        raise InputError(f"{p}: damaged tile plan (tile count does not match its parameters)")
    return StoredPlan(plan=plan, crs=crs, transform=transform, meta=meta)


def read_plan(path: str | os.PathLike[str]) -> TilePlan:
    """Rebuild the :class:`~geounet.core.tiling.TilePlan` stored by :func:`write_plan`.

    Raises:
        InputError: If the file is missing or not a geounet tile plan.
    """
    return read_stored_plan(path).plan


@dataclass(frozen=True)
class PlanResult:
    """What :func:`plan_scene` produced."""

    path: Path
    plan: TilePlan
    resampled: bool
    pixel_size_m: float
    model_pixel_size_m: float


def plan_scene(
    scene: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: str | os.PathLike[str] | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    border: int = 32,
    resample: bool = True,
    overwrite: bool = False,
) -> PlanResult:
    """Plan the tiles of a scene exactly as ``geounet predict`` would, and write the plan.

    Only the model card is read (no weights): it gives the model's pixel size, default
    tile size and the multiple the network needs.

    Args:
        scene: The georeferenced raster to plan.
        out: The GeoPackage to write.
        model: Checkpoint path; ``None`` for the bundled model.
        tile: Tile size in pixels of the working grid; default from the model card.
        overlap: Minimum overlap in pixels; default a quarter tile, at most 128.
        border: Mirrored context around the scene, in pixels.
        resample: Plan on the model's pixel size when the scene's differs (as predict).
        overwrite: Replace an existing plan.

    Returns:
        The path written and the plan.

    Raises:
        InputError: On an unusable scene or settings.
        CheckpointError: On an unusable model.
        OutputExistsError: If ``out`` exists and ``overwrite`` is false.
    """
    from geounet.inference.engine import working_grid
    from geounet.inference.options import PredictOptions, needs_resampling, plan_for_grid
    from geounet.io.raster import ground_pixel_size_m, open_scene
    from geounet.model.checkpoint import bundled_model_path, read_card

    model_path = bundled_model_path() if model is None else Path(model)
    card = read_card(model_path)
    out = Path(out)
    check_outputs([out], overwrite)
    opts = PredictOptions(tile=tile, overlap=overlap, border=border, resample=resample)
    with open_scene(scene) as src:
        px_m = ground_pixel_size_m(src)
        resampled = needs_resampling(px_m, card.pixel_size_m, resample)
        factor = card.pixel_size_m / px_m if resampled else 1.0
        with working_grid(src, factor) as grid:
            plan = plan_for_grid(grid.height, grid.width, card, opts)
            meta = {
                "scene": os.fspath(scene),
                "scene_height": src.height,
                "scene_width": src.width,
                "scene_pixel_size_m": px_m,
                "model": str(model_path) if model is not None else "bundled",
                "model_pixel_size_m": card.pixel_size_m,
                "resampled": resampled,
                "factor": factor,
            }
            write_plan(plan, grid.crs, grid.transform, out, meta, overwrite=True)
    return PlanResult(out, plan, resampled, px_m, card.pixel_size_m)
