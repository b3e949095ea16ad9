"""``geounet plan``: write a scene's tile plan as a GeoPackage (for ``predict --plan``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geounet.cli._app import app, user_errors


@app.command()
def plan(
    scene: Annotated[
        str,
        typer.Argument(
            help="Georeferenced raster to plan: a file, an http(s) COG URL or a GDAL path.",
            metavar="SCENE",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Tile plan to write (GeoPackage, .gpkg).")
    ],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", "-m", help="geounet checkpoint (.safetensors); default: the bundled model."
        ),
    ] = None,
    tile: Annotated[
        int | None,
        typer.Option(help="Tile size in pixels of the model's grid; default from the model."),
    ] = None,
    overlap: Annotated[
        int | None,
        typer.Option(help="Minimum overlap between tiles, in pixels; default tile/4, at most 128."),
    ] = None,
    border: Annotated[int, typer.Option(help="Mirrored context around the scene, in pixels.")] = 32,
    resample: Annotated[
        bool,
        typer.Option(help="Plan on the model's pixel size when the scene's differs (as predict)."),
    ] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing plan.")] = False,
) -> None:
    """Plan the tiles of SCENE as `geounet predict` would; the plan opens in QGIS."""
    from geounet.inference.tileplan import plan_scene  # imported here: `geounet --help` stays fast
    from geounet.io.remote import resolve_scene

    with user_errors():
        source = resolve_scene(scene)
        result = plan_scene(source.path, out, model, tile, overlap, border, resample, overwrite)
    p = result.plan
    note = (
        f", resampled {result.pixel_size_m:.3f} m -> {result.model_pixel_size_m:.3f} m"
        if result.resampled
        else ""
    )
    typer.echo(
        f"{source.label}: {len(p)} tiles of {p.tile_width} x {p.tile_height} px over "
        f"{p.width} x {p.height} px{note} -> {result.path}"
    )
