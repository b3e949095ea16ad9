"""``geounet export``: footprints as a JOSM-ready ``.osm`` file or as GeoJSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geounet.cli._app import app, user_errors
from geounet.cli._choices import ExportFormat

SUFFIXES = {"osm": ".osm", "geojson": ".geojson"}


@app.command()
def export(
    footprints: Annotated[
        Path,
        typer.Argument(
            help="Footprints (<stem>.buildings.gpkg of geounet predict).", metavar="FOOTPRINTS"
        ),
    ],
    to: Annotated[ExportFormat, typer.Option("--to", help="The format to write.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="File to write; default: FOOTPRINTS with .osm/.geojson."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            help="The source tag of an .osm file; default: the imagery and model the "
            "footprints' provenance names."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Write footprints for OpenStreetMap (open the .osm in JOSM) or as GeoJSON (EPSG:4326).

    The .osm file holds new objects only (negative ids): closed ways tagged building=yes
    (multipolygon relations for roofs with courtyards), corners that touching roofs share,
    and corners on a neighbour's wall, as nodes of both, and a source tag. Review the
    buildings in JOSM before uploading them.
    """
    from geounet.footprints.export import export_geojson, export_osm  # `--help` stays fast

    target = out or footprints.with_name(
        footprints.name.removesuffix(".gpkg").removesuffix(".buildings") + SUFFIXES[to]
    )
    with user_errors():
        if to == "osm":
            done = export_osm(footprints, target, source, overwrite)
        else:
            done = export_geojson(footprints, target, overwrite)
    skipped = f" ({done.skipped} without a polygon left out)" if done.skipped else ""
    tag = f", source={done.source!r}" if done.source else ""
    typer.echo(f"{done.buildings} buildings -> {done.path}{skipped}{tag}")
