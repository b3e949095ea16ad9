"""``geounet qgis-project``: one QGIS project of several scenes and their outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geounet.cli._app import app, user_errors
from geounet.errors import InputError
from geounet.io.remote import is_local

_PAIR_HELP = "ID=PATH, repeat; the id names a --scene."


def _pairs(option: str, values: list[str] | None) -> dict[str, str]:
    """Parse repeated ``ID=PATH`` values of ``option`` into ``{id: path}``.

    Raises:
        InputError: If a value has no ``=`` or an id repeats.
    """
    out: dict[str, str] = {}
    for value in values or []:
        sid, sep, path = value.partition("=")
        if not sep or not sid or not path:
            raise InputError(f"{option} {value!r} must be ID=PATH, e.g. {option} a=scenes/a.tif")
        if sid in out:
            raise InputError(f"{option} is given twice for scene {sid!r}")
        out[sid] = path
    return out


@app.command("qgis-project")
def qgis_project(
    out: Annotated[Path, typer.Option("--out", "-o", help="Project file to write (.qgz or .qgs).")],
    scene: Annotated[
        list[str],
        typer.Option(
            "--scene",
            metavar="ID=IMAGE",
            help="ID=IMAGE of each scene, repeat; each becomes a layer group named ID.",
        ),
    ],
    prob: Annotated[
        list[str] | None,
        typer.Option("--prob", metavar="ID=PATH", help=f"<stem>.prob.tif: {_PAIR_HELP}"),
    ] = None,
    footprints: Annotated[
        list[str] | None,
        typer.Option(
            "--footprints", metavar="ID=PATH", help=f"<stem>.buildings.gpkg: {_PAIR_HELP}"
        ),
    ] = None,
    plan: Annotated[
        list[str] | None,
        typer.Option("--plan", metavar="ID=PATH", help=f"Tile plan of geounet plan: {_PAIR_HELP}"),
    ] = None,
    objects: Annotated[
        list[str] | None,
        typer.Option(
            "--objects", metavar="ID=PATH", help=f"objects.gpkg of geounet evaluate: {_PAIR_HELP}"
        ),
    ] = None,
    conflation: Annotated[
        list[str] | None,
        typer.Option(
            "--conflation",
            metavar="ID=PATH",
            help=f"<stem>.conflation.gpkg of geounet conflate: {_PAIR_HELP}",
        ),
    ] = None,
    title: Annotated[
        str | None, typer.Option(help="Project title; default: the file's stem.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing project.")] = False,
) -> None:
    """Write a QGIS project of scenes and their styled outputs, by relative path."""
    from geounet.io.raster import check_outputs
    from geounet.qgis.project import (
        SceneLayers,
        write_project,
    )  # imported here: `geounet --help` stays fast

    with user_errors():
        # a scene may be a URL (which Path would fold to one /); outputs are files
        scenes = {s: Path(p) if is_local(p) else p for s, p in _pairs("--scene", scene).items()}
        extras = {
            option: {sid: Path(p) for sid, p in _pairs(option, values).items()}
            for option, values in (
                ("--prob", prob),
                ("--footprints", footprints),
                ("--plan", plan),
                ("--objects", objects),
                ("--conflation", conflation),
            )
        }
        for option, files in extras.items():
            unknown = sorted(set(files) - set(scenes))
            if unknown:
                raise InputError(f"{option} names no --scene: {', '.join(unknown)}")
        check_outputs([out], overwrite)
        layers = [
            SceneLayers(
                image,
                probability=extras["--prob"].get(sid),
                footprints=extras["--footprints"].get(sid),
                objects=extras["--objects"].get(sid),
                tile_plan=extras["--plan"].get(sid),
                conflation=extras["--conflation"].get(sid),
                name=sid,
            )
            for sid, image in scenes.items()
        ]
        write_project(out, layers, title=title)
    typer.echo(f"{len(layers)} scenes -> {out}")
