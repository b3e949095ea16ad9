"""``geounet vectorize``: footprints from a probability raster of ``geounet predict``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from geounet.cli._app import app, user_errors
from geounet.cli._progress import stage_bars
from geounet.errors import InputError
from geounet.footprints import SIMPLIFY_M


@app.command()
def vectorize(
    prob: Annotated[Path, typer.Argument(help="<stem>.prob.tif written by geounet predict.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Footprints to write (GeoPackage, .gpkg).")
    ],
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Probability threshold; default: the one the raster was made with (its "
            "provenance), else the model card's (--model or bundled)."
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", "-m", help="Checkpoint whose card gives the default threshold."),
    ] = None,
    min_area: Annotated[
        float, typer.Option("--min-area", help="Smallest footprint kept, in m2.")
    ] = 2.0,
    simplify: Annotated[
        float, typer.Option(min=0.0, help="Simplification tolerance, in ground metres (0 = off).")
    ] = SIMPLIFY_M,
    regularize: Annotated[
        bool,
        typer.Option(
            help="Square footprint outlines: right angles, few corners (--no-regularize: "
            "as traced from the pixels)."
        ),
    ] = True,
    split: Annotated[
        Path | None,
        typer.Option(
            help="<stem>.split.tif of geounet predict --no-footprints (models with body or "
            "contact channels): split touching buildings where the model separates them."
        ),
    ] = None,
    body_threshold: Annotated[
        float | None,
        typer.Option(
            help="Body probability that seeds a footprint (with --split); default: the "
            "model card's (--model or bundled)."
        ),
    ] = None,
    seed_area: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Smallest seed, in m2, that starts a footprint of its own (with --split); "
            "default: the model card's (--model or bundled).",
        ),
    ] = None,
    min_confidence: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=0.999,
            help="Drop footprints whose mean building probability is below this (0 keeps "
            "all); default: the one the raster was made with, else the model card's.",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Turn building probabilities into footprint polygons (layer `buildings`)."""
    import rasterio

    from geounet.footprints.vectorize import outline_tags, split_bands, write_footprints
    from geounet.footprints.vectorize import vectorize as vectorize_raster
    from geounet.io.raster import check_outputs, read_provenance

    with user_errors():
        made = read_provenance(prob) if prob.is_file() and model is None else None
        model_px: float | None = None
        if made is not None:  # as the raster was made, unless a model is named
            threshold = made.threshold if threshold is None else threshold
            body_threshold = made.body_threshold if body_threshold is None else body_threshold
            seed_area = made.seed_area_m2 if seed_area is None else seed_area
            min_confidence = made.min_confidence if min_confidence is None else min_confidence
            model_px = made.model_pixel_size_m or None
        if (
            threshold is None
            or body_threshold is None
            or seed_area is None
            or min_confidence is None
            or (regularize and model_px is None)
        ):
            from geounet.errors import CheckpointError
            from geounet.model.checkpoint import ModelCard, bundled_model_path, read_card
            from geounet.model.network import ModelConfig

            try:
                card = read_card(model or bundled_model_path())
            except CheckpointError:
                if model is not None:
                    raise
                card = ModelCard(ModelConfig())  # no bundled model in this installation
            threshold = card.threshold if threshold is None else threshold
            body_threshold = card.body_threshold if body_threshold is None else body_threshold
            seed_area = card.seed_area_m2 if seed_area is None else seed_area
            min_confidence = card.min_confidence if min_confidence is None else min_confidence
            model_px = card.pixel_size_m if model_px is None else model_px
        if not 0.0 < threshold < 1.0:
            raise InputError(f"--threshold {threshold} must lie strictly between 0 and 1")
        if not prob.is_file():
            raise InputError(f"{prob} does not exist; pass a .prob.tif of geounet predict")
        check_outputs([out], overwrite)
        if split is not None and not split.is_file():
            raise InputError(f"{split} does not exist; pass a .split.tif of geounet predict")
        with rasterio.open(prob) as src:
            rows = src.height
        with stage_bars(quiet) as progress:
            progress("vectorise", 0, rows)
            gdf = vectorize_raster(
                prob,
                threshold,
                min_area,
                simplify,
                regularize=regularize,
                split=(split, split_bands(split)) if split else None,
                body_threshold=body_threshold,
                model_pixel_m=model_px,
                seed_area_m2=seed_area,
                min_confidence=min_confidence,
                advance=lambda n: progress("vectorise", n, rows),
                advance_squared=lambda n, total: progress("square", n, total),
            )
        metadata = outline_tags(regularize)
        if made is not None:
            metadata |= replace(
                made,
                threshold=threshold,
                body_threshold=body_threshold,
                seed_area_m2=seed_area,
                min_confidence=min_confidence,
            ).tags()
        write_footprints(gdf, out, overwrite, metadata=metadata)
    typer.echo(f"{prob.name}: {len(gdf)} buildings at p >= {threshold:g} -> {out}")
