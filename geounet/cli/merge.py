"""``geounet merge``: one GeoPackage of the footprints of many scenes, tagged by scene id."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geounet.cli._app import app, user_errors
from geounet.errors import InputError


@app.command()
def merge(
    footprints: Annotated[
        list[Path], typer.Argument(help="Footprint GeoPackages (<stem>.buildings.gpkg).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Merged GeoPackage to write.")],
    scene_id: Annotated[
        list[str] | None,
        typer.Option(
            "--scene-id",
            help="Scene id of each input, in order (repeat); default: file name "
            "without .buildings.gpkg.",
        ),
    ] = None,
    crs: Annotated[
        str | None, typer.Option(help="Output CRS, e.g. EPSG:4326; default: the first file's.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Concatenate footprint files into one layer `buildings` with a `scene_id` column."""
    from geounet.footprints.merge import (
        merge_footprints,
        scene_id_of,
    )  # imported here: `geounet --help` stays fast

    with user_errors():
        ids = list(scene_id or [])
        if ids and len(ids) != len(footprints):
            raise InputError(
                f"{len(ids)} --scene-id for {len(footprints)} files; give one per file or none"
            )
        names = ids or [scene_id_of(p) for p in footprints]
        merged = merge_footprints(list(zip(names, footprints, strict=True)), out, crs, overwrite)
    typer.echo(f"{len(merged)} buildings from {len(footprints)} scenes -> {out}")
