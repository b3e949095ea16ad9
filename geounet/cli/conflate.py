"""``geounet conflate``: which predicted buildings are already mapped, new, or in conflict."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geounet.cli._app import app, user_errors


@app.command()
def conflate(
    footprints: Annotated[
        Path,
        typer.Argument(
            help="Predicted footprints (<stem>.buildings.gpkg of geounet predict).",
            metavar="FOOTPRINTS",
        ),
    ],
    existing: Annotated[
        Path,
        typer.Option(
            "--existing",
            "-e",
            help="Buildings already mapped: an OSM extract, Microsoft or Google open "
            "buildings, a city layer (any vector format and CRS).",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="GeoPackage to write; default: <stem>.conflation.gpkg beside it."
        ),
    ] = None,
    iou: Annotated[
        float, typer.Option("--iou", help="Minimum IoU of a match (0.5 counts), as evaluate.")
    ] = 0.5,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Mark each predicted building new, match or conflict against an existing layer.

    Also marks the existing buildings in the predictions' area that no prediction
    matched (missing). Writes one styled layer, `conflation`, for QGIS; upload the new
    ones, review the conflicts.
    """
    from geounet.footprints.conflate import conflate_files  # `geounet --help` stays fast

    stem = footprints.name.removesuffix(".gpkg").removesuffix(".buildings")
    target = out or footprints.with_name(f"{stem}.conflation.gpkg")
    with user_errors():
        result = conflate_files(footprints, existing, target, iou, overwrite)
    c = result.counts
    typer.echo(
        f"{c['new']} new, {c['match']} already mapped, {c['conflict']} in conflict "
        f"(predicted); {c['missing']} mapped but not predicted -> {target}"
    )
