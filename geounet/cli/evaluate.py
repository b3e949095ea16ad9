"""``geounet evaluate`` (one scene against true footprints) and ``geounet summarise``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from geounet.cli._app import app, user_errors
from geounet.cli._choices import SizeUnit


@app.command()
def evaluate(
    scene: Annotated[
        str,
        typer.Argument(
            help="The scene that was predicted: a file, an http(s) COG URL or a GDAL path.",
            metavar="SCENE",
        ),
    ],
    truth: Annotated[
        Path, typer.Option("--truth", "-t", help="True footprints (GeoPackage, GeoJSON...).")
    ],
    out_dir: Annotated[
        Path, typer.Option("--out-dir", "-o", help="Folder for report.json, report.html, PNGs.")
    ],
    prob: Annotated[
        Path | None,
        typer.Option("--prob", help="<stem>.prob.tif of geounet predict (pixel level, sweep)."),
    ] = None,
    footprints: Annotated[
        Path | None,
        typer.Option("--footprints", help="<stem>.buildings.gpkg of geounet predict."),
    ] = None,
    min_size: Annotated[
        float,
        typer.Option(help="Polygons smaller than this are ignored on both sides (objects)."),
    ] = 20.0,
    min_size_unit: Annotated[
        SizeUnit, typer.Option(help="Unit of --min-size: px (scene pixels) or m2 (ground).")
    ] = "px",
    iou: Annotated[
        float, typer.Option("--iou", help="Minimum IoU of an object match (0.5 counts).")
    ] = 0.5,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Probability at or above which a pixel is building; default: the one the "
            "probability raster was made with (0.5 if it does not say)."
        ),
    ] = None,
    object_sweep: Annotated[
        bool | None,
        typer.Option(
            "--object-sweep/--no-object-sweep",
            help="Sweep thresholds at object level too; default: for scenes up to 16 Mpx.",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Scene name in the report and summaries; default: the file name."),
    ] = None,
    qgis_project: Annotated[
        bool,
        typer.Option(
            "--qgis-project",
            help="Also write <name or stem>.qgz in --out-dir: a QGIS project of the scene, "
            "the given outputs and the TP / FP / FN footprints.",
        ),
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing report.")] = False,
) -> None:
    """Score predictions against true footprints at pixel and object level (SpaceNet rule)."""
    from geounet.evaluation.evaluate import (
        evaluate_scene,  # imported here: `geounet --help` stays fast
    )
    from geounet.evaluation.report import check_out_dir, headline_table, write_report
    from geounet.io.raster import check_outputs
    from geounet.io.remote import is_local
    from geounet.qgis.project import SceneLayers, project_path, write_project

    console = Console()
    with user_errors():
        check_out_dir(out_dir, overwrite)
        project = project_path(out_dir, f"{name}.tif" if name else scene) if qgis_project else None
        if project is not None:
            check_outputs([project], overwrite)
        ev = evaluate_scene(
            scene,
            truth,
            prob=prob,
            footprints=footprints,
            min_size=min_size,
            min_size_unit="px" if min_size_unit == "px" else "m2",
            iou_threshold=iou,
            threshold=threshold,
            object_sweep=object_sweep,
            name=name,
        )
        paths = write_report(ev, out_dir, overwrite=overwrite)
        if project is not None:
            image = Path(scene) if is_local(scene) else scene  # a URL keeps its //
            layers = SceneLayers(image, prob, footprints, objects=paths.get("objects"))
            write_project(project, layers)
    for warning in ev.report["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(headline_table(ev.report))
    console.print(f"report: {paths['html']}")
    if "objects" in paths:
        console.print(f"TP / FP / FN footprints (styled for QGIS): {paths['objects']}")
    if project is not None:
        console.print(f"QGIS project: {project}")


@app.command()
def summarise(
    reports: Annotated[list[Path], typer.Argument(help="report.json files of geounet evaluate.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Summary file: .json, or .csv for the table."),
    ] = None,
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Also write the table as CSV here.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs.")] = False,
) -> None:
    """Combine scene reports: one row per scene and micro-averaged totals."""
    from geounet.evaluation.summary import (
        summarise as summarise_reports,
    )  # imported here: `geounet --help` stays fast
    from geounet.evaluation.summary import write_summary

    with user_errors():
        summary = summarise_reports(reports)
        for path in (out, csv):
            if path is not None:
                write_summary(summary, path, overwrite=overwrite)
    table = Table(title=f"{len(summary['scenes'])} scenes, micro-averaged total")
    for col in ("scene", "pixel IoU", "pixel F1", "object P", "object R", "object F1"):
        table.add_column(col, justify="left" if col == "scene" else "right")
    for row in [*summary["scenes"], summary["total"]]:
        table.add_row(
            row["scene"],
            *(
                f"{row[k]:.3f}"
                for k in ("pixel_iou", "pixel_f1", "object_precision", "object_recall", "object_f1")
            ),
        )
    Console().print(table)
