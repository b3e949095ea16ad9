"""``geounet quantize``: an int8 model for fast CPU prediction (OpenVINO)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geounet.cli._app import app, user_errors
from geounet.errors import InputError


@app.command()
def quantize(
    model: Annotated[
        Path, typer.Argument(help="Checkpoint (.safetensors) to quantise.", metavar="MODEL")
    ],
    images: Annotated[
        list[Path],
        typer.Option("--images", "-i", help="Scene(s) the model was trained on; repeatable."),
    ],
    labels: Annotated[
        list[Path] | None,
        typer.Option(
            "--labels",
            "-l",
            help="Footprints of each scene (repeatable, in the order of --images; scenes "
            "sharing a file are one place), or one file for all: int8 is then scored "
            "against the default precision on every place's strip, and --precision auto "
            "runs it where all are within tolerance.",
        ),
    ] = None,
    val_fraction: Annotated[
        float, typer.Option(help="Eastern fraction of each scene held out, as in training.")
    ] = 0.2,
    check_only: Annotated[
        bool,
        typer.Option(
            "--check-only",
            help="Score the int8 model already beside MODEL (needs --labels) without "
            "quantising again; its checks against other precisions are kept. Run it on a "
            "CPU whose default precision differs (bfloat16 with bfloat16 units, float32 "
            "without) to let --precision auto run int8 there too.",
        ),
    ] = False,
) -> None:
    """Write MODEL's int8 model beside it, calibrated on its validation strips.

    `geounet predict --precision int8` then runs it with OpenVINO on the CPU, about
    twice as fast as bfloat16 (pip install geounet[int8]). With --labels it is checked
    too, and `--precision auto` runs it where its figures are within tolerance. For the
    bundled model, run scripts/quantize_bundled_model.sh in a source checkout.
    """
    from geounet.model.int8 import TOLERANCE, check_path  # `geounet --help` stays fast
    from geounet.train.quantize import check_int8, places_of, quantize_model

    with user_errors():
        if labels:
            places_of(images, labels)  # a mismatch fails before quantising
        elif check_only:
            raise InputError("--check-only scores the int8 model: give the strips' --labels")
        if not check_only:
            path, tiles = quantize_model(model, images, val_fraction=val_fraction)
            made = f"int8, calibrated on {tiles} tiles of the validation strips"
            typer.echo(f"{path} (+ .bin): {made}")
        if not labels:
            typer.echo("not checked (no --labels): --precision auto does not run it")
            return
        reference, checks = check_int8(model, images, labels, val_fraction)
    for c in checks:
        typer.echo(
            f"  {c.place} ({c.buildings} buildings in {c.scenes} strip(s)): pixel IoU "
            f"{c.reference[0]:.3f} -> {c.int8[0]:.3f}, object F1 {c.reference[1]:.3f} -> "
            f"{c.int8[1]:.3f} ({reference} -> int8){'' if c.within else '  OUT OF TOLERANCE'}"
        )
    tolerance = (
        f"pixel IoU within {TOLERANCE['pixel_iou']}, object F1 within {TOLERANCE['object_f1']}"
    )
    check = f"(check: {check_path(model)})"
    if all(c.within for c in checks):
        verdict = f"within tolerance ({tolerance}) on every place: --precision auto runs it"
    else:
        out = ", ".join(c.place for c in checks if not c.within)
        verdict = (
            f"out of tolerance ({tolerance}) on {out}: --precision auto keeps {reference}; "
            "--precision int8 forces it"
        )
    typer.echo(f"int8 is {verdict} {check}")
