"""``geounet ensemble``: one checkpoint that averages the probabilities of several models."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from geounet.cli._app import app, user_errors


@app.command()
def ensemble(
    models: Annotated[
        list[Path], typer.Argument(help="Two or more checkpoints (.safetensors) to combine.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Ensemble checkpoint to write.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Combine models of one architecture into an ensemble that averages their probabilities.

    The models must share architecture, bands, pixel size and output
    channels (e.g. runs of `geounet train` on the same data with other seeds or
    augmentation). Prediction costs one forward pass per member. Choose the ensemble's
    thresholds afterwards with `geounet calibrate`.
    """
    from geounet.model.ensemble import combine  # imported here: `geounet --help` stays fast

    with user_errors():
        card = combine(models, out, shlex.join(["geounet", *sys.argv[1:]]), overwrite)
    body = f", body {card.body_threshold:.2f}" if "body" in card.class_names else ""
    typer.echo(
        f"{out}: ensemble of {card.model.members} networks (threshold {card.threshold:.2f}"
        f"{body}, the members' mean); choose its own with `geounet calibrate`"
    )
