"""``geounet calibrate``: choose a trained model's thresholds on its validation strip."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geounet.cli._app import app, user_errors
from geounet.cli._choices import Device, Precision, Tta


@app.command()
def calibrate(
    model: Annotated[Path, typer.Argument(help="Checkpoint (.safetensors) to calibrate.")],
    images: Annotated[
        list[Path],
        typer.Option("--images", "-i", help="Scene(s) the model was trained on; repeatable."),
    ],
    labels: Annotated[
        list[Path], typer.Option("--labels", "-l", help="Footprint file(s); repeatable.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write.")],
    val_fraction: Annotated[
        float, typer.Option(help="Eastern fraction of each scene held out, as in training.")
    ] = 0.2,
    device: Annotated[Device, typer.Option(help="Where to run the model.")] = "auto",
    precision: Annotated[Precision, typer.Option(help="Precision of the model.")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
    body_threshold: Annotated[
        float | None,
        typer.Option(
            help="Keep this body threshold and choose only the building one (models with a "
            "body channel; 0.5 = half depth for --body-target depth)."
        ),
    ] = None,
    tta: Annotated[
        Tta | None,
        typer.Option(
            help="Test-time augmentation to choose the thresholds with (none, flips or d4); "
            "written into the card, so `geounet predict` uses it. Default: the model's."
        ),
    ] = None,
    aoi: Annotated[
        Path | None,
        typer.Option(
            help="Polygons where the labels are complete (your digitised area): the eastern "
            "part of them (--val-fraction) is where the thresholds are chosen, as "
            "`geounet finetune` does. Default: each scene's eastern strip."
        ),
    ] = None,
    show_sweep: Annotated[
        bool,
        typer.Option(
            help="Print every threshold's figures on the strip (how close the others came)."
        ),
    ] = False,
) -> None:
    """Choose the building (and body) thresholds on the validation strip; write them in the card.

    For a model that splits touching roofs, the smallest seed that starts a footprint of
    its own is chosen too (0.5 to 12 m2), and for any model the smallest confidence (mean
    building probability) of a footprint kept (0, keeping all, or 0.5 to 0.75).

    The scenes are split as `geounet train` splits them, so no pixel of area the model
    trained on decides a threshold; with --aoi, the eastern part of your labelled area is
    the strip, so a model that never saw your town can be calibrated to it. Each scene is
    predicted whole, as `geounet predict` predicts it (tiles, overlap, mirrored borders,
    uint8, the chosen test-time augmentation), and only its strip is scored. `geounet train`
    does the same at the end of a run.
    """
    from geounet.train import calibrate as calibrate_model  # keeps `geounet --help` fast
    from geounet.train.validation import sweep_table

    with user_errors():
        best = calibrate_model(
            model, images, labels, out, val_fraction, device, precision, overwrite,
            body_threshold, tta,
            on_sweep=(lambda scores: typer.echo(sweep_table(scores))) if show_sweep else None,
            aoi=aoi,
        )  # fmt: skip
    body = "" if best.body_threshold is None else f", body {best.body_threshold:.2f}"
    body += "" if best.seed_area_m2 is None else f", smallest seed {best.seed_area_m2:g} m2"
    body += "" if not best.min_confidence else f", confidence >= {best.min_confidence:g}"
    typer.echo(
        f"{out}: threshold {best.threshold:.2f}{body} "
        f"(validation IoU {best.pixels.iou:.3f}, object F1 {best.objects.f1:.3f})"
    )
