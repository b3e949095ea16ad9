"""``geounet predict``: a scene in, a probability COG and a footprint GeoPackage out."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from geounet.cli._app import app, fail, user_errors
from geounet.cli._choices import Compile, Device, Precision, Tta
from geounet.cli._progress import stage_bars
from geounet.footprints import SIMPLIFY_M


def _parse_range(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        fail(f"--value-range {text!r} must be two numbers MIN,MAX, e.g. 0,65535")
    return lo, hi


def _parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError:
        fail(f"--bbox {text!r} must be four numbers W,S,E,N in degrees, e.g. 32.58,0.31,32.59,0.32")
    return west, south, east, north


def _parse_bands(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        fail(f"--bands {text!r} is not a comma-separated list of band numbers, e.g. 1,2,3")


@app.command()
def predict(
    scene: Annotated[
        str,
        typer.Argument(
            help="Georeferenced raster to map: a file (GeoTIFF, COG, VRT...), an http(s) "
            "COG URL, a GDAL path (/vsis3/...), or an XYZ tile URL with {z}/{x}/{y} "
            "(then --bbox and --zoom).",
            metavar="SCENE",
        ),
    ],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", "-m", help="geounet checkpoint (.safetensors); default: the bundled model."
        ),
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out-dir", "-o", help="Folder for the outputs.")
    ] = Path("."),
    tile: Annotated[
        int | None,
        typer.Option(
            help="Largest tile side in pixels of the model's grid (tiles shrink to the "
            "smallest side that covers the scene with as many tiles); default from the model."
        ),
    ] = None,
    overlap: Annotated[
        int | None,
        typer.Option(help="Minimum overlap between tiles, in pixels; default tile/4, at most 128."),
    ] = None,
    border: Annotated[int, typer.Option(help="Mirrored context around the scene, in pixels.")] = 32,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Tiles per forward pass; default 1 on CPU, 4 on GPU."),
    ] = None,
    device: Annotated[Device, typer.Option(help="Where to run the model.")] = "auto",
    precision: Annotated[
        Precision,
        typer.Option(help="auto (bfloat16 on AMX CPUs, AMP on CUDA), float32, bfloat16, float16."),
    ] = "auto",
    threshold: Annotated[
        float | None, typer.Option(help="Footprint probability threshold; default from the model.")
    ] = None,
    min_area: Annotated[
        float, typer.Option("--min-area", help="Smallest footprint kept, in m2.")
    ] = 2.0,
    seed_area: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Smallest roof seed, in m2, that becomes a footprint of its own where "
            "touching roofs are split (lower: small attached houses apart; higher: fewer "
            "roofs cut in pieces); default from the model.",
        ),
    ] = None,
    min_confidence: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=0.999,
            help="Drop footprints whose mean building probability is below this (0 keeps "
            "all; each footprint's is in its confidence field); default from the model.",
        ),
    ] = None,
    simplify: Annotated[
        float,
        typer.Option(
            min=0.0, help="Footprint simplification tolerance, in ground metres (0 = off)."
        ),
    ] = SIMPLIFY_M,
    bands: Annotated[
        str | None, typer.Option(help="Scene bands for the model, 1-based, in order, e.g. 1,2,3.")
    ] = None,
    value_range: Annotated[
        str | None,
        typer.Option(
            help="Map raw values MIN,MAX onto 0..255 first, for 16-bit or float scenes "
            "(e.g. 0,65535 or 0,1)."
        ),
    ] = None,
    compile: Annotated[
        Compile,
        typer.Option(
            help="Compile the network with torch.compile (same probabilities, faster on a "
            "CPU; about 30 s to compile the first time, 6 s after): auto (on a CPU, for "
            "scenes of about 10000 px square or more), on, off."
        ),
    ] = "auto",
    tta: Annotated[
        Tta | None,
        typer.Option(
            help="Test-time augmentation: none, flips (4 passes a tile) or d4 (8: flips and "
            "rotations); default: the model's, the one its thresholds were chosen with."
        ),
    ] = None,
    resample: Annotated[
        bool,
        typer.Option(
            help="Resample scenes of another pixel size to the model's, and back to the scene grid."
        ),
    ] = True,
    float32: Annotated[
        bool,
        typer.Option(
            "--float32", help="Store probabilities as float32 instead of uint8 (value/255)."
        ),
    ] = False,
    regularize: Annotated[
        bool,
        typer.Option(
            help="Square footprint outlines: right angles, few corners (--no-regularize: "
            "as traced from the pixels)."
        ),
    ] = True,
    footprints: Annotated[
        bool, typer.Option(help="Also vectorise footprints (--no-footprints: raster only).")
    ] = True,
    workers: Annotated[
        int, typer.Option(min=1, help="Local dask worker processes (1 = in-process pipeline).")
    ] = 1,
    scheduler: Annotated[
        str | None,
        typer.Option(help="Address of a dask.distributed scheduler, e.g. tcp://host:8786."),
    ] = None,
    plan: Annotated[
        Path | None,
        typer.Option(help="Tile plan from `geounet plan` (same model and settings) to follow."),
    ] = None,
    qgis_project: Annotated[
        bool,
        typer.Option(
            "--qgis-project",
            help="Also write <stem>.qgz: a QGIS project of the scene and the styled outputs.",
        ),
    ] = False,
    name: Annotated[
        str | None,
        typer.Option(help="Stem of the output files; default: the scene's file name stem."),
    ] = None,
    bbox: Annotated[
        str | None,
        typer.Option(help="Area of a tile service to map: W,S,E,N in degrees.", metavar="W,S,E,N"),
    ] = None,
    aoi: Annotated[
        Path | None,
        typer.Option(help="Area of a tile service to map, as polygons (its bounds); or --bbox."),
    ] = None,
    zoom: Annotated[
        int | None, typer.Option(help="Zoom level of the tile service's tiles to read.")
    ] = None,
    tile_cache: Annotated[
        Path | None,
        typer.Option(help="Folder of cached service tiles; default ~/.cache/geounet/tiles."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Map the buildings of SCENE: writes <stem>.prob.tif and <stem>.buildings.gpkg."""
    # imported here: `geounet --help` stays fast
    from geounet.inference.options import PredictOptions
    from geounet.inference.scene import predict_scene
    from geounet.inference.tileplan import read_plan
    from geounet.io.raster import check_outputs
    from geounet.io.remote import aoi_bbox, is_local, is_tile_template, resolve_scene
    from geounet.qgis.project import SceneLayers, project_path, write_project

    options = PredictOptions(
        tile=tile,
        overlap=overlap,
        border=border,
        batch_size=batch_size,
        device=device,
        precision=precision,
        threshold=threshold,
        min_area_m2=min_area,
        seed_area_m2=seed_area,
        min_confidence=min_confidence,
        simplify_m=simplify,
        resample=resample,
        float32=float32,
        bands=_parse_bands(bands),
        overwrite=overwrite,
        footprints=footprints,
        workers=workers,
        scheduler=scheduler,
        regularize=regularize,
        value_range=_parse_range(value_range),
        name=name,
        tta=tta,
        compile=compile,
    )
    console = Console(stderr=True)
    with user_errors(), stage_bars(quiet) as progress:
        box = _parse_bbox(bbox)
        if aoi is not None:
            if box is not None:
                fail("pass --bbox or --aoi, not both")
            box = aoi_bbox(aoi)
        source = resolve_scene(scene, box, zoom, tile_cache)
        options = replace(options, name=name or source.stem, label=source.label)
        if plan is not None:
            options = replace(options, plan=read_plan(plan))
        if qgis_project and is_tile_template(scene):
            fail("--qgis-project needs a scene file or URL; add the tile service to QGIS")
        project = project_path(out_dir, f"{options.name}.tif") if qgis_project else None
        if project is not None:
            check_outputs([project], overwrite)
        result = predict_scene(source.path, out_dir, model, options, progress)
        if project is not None:
            image = Path(scene) if is_local(scene) else scene  # a URL keeps its //
            layers = SceneLayers(image, result.probability, result.footprints, tile_plan=plan)
            write_project(project, layers)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    resample_note = (
        f", resampled {result.pixel_size_m:.3f} m -> {result.model_pixel_size_m:.3f} m"
        if result.resampled
        else ""
    )
    found = "" if result.buildings is None else f", {result.buildings} buildings"
    tta_note = "" if result.tta == "none" else f", {result.tta} test-time augmentation"
    outputs = ", ".join(str(p) for p in (result.probability, result.footprints, project) if p)
    typer.echo(
        f"{source.label}: {result.tiles} tiles{found} in {result.seconds:.1f} s on "
        f"{result.device} ({result.precision}{tta_note}{resample_note}) -> {outputs}"
    )
