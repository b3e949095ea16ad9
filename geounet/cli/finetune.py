"""``geounet finetune``: adapt a model to a town from a few hundred local footprints."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from geounet.cli._app import app, user_errors
from geounet.cli._choices import Device
from geounet.train.finetune import FINETUNE_DEFAULTS, finetune


@app.command("finetune")
def finetune_command(
    images: Annotated[
        list[Path],
        typer.Option("--images", "-i", help="Scene(s) of the town; repeat the option."),
    ],
    labels: Annotated[
        list[Path],
        typer.Option("--labels", "-l", help="Footprints you digitised (any CRS); repeatable."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write (.safetensors).")],
    model: Annotated[
        Path | None,
        typer.Option(help="Model to start from; default: the bundled model."),
    ] = None,
    aoi: Annotated[
        Path | None,
        typer.Option(
            help="Polygons where your labels are complete; default: the footprints' convex "
            "hull. Chips never leave it."
        ),
    ] = None,
    minutes: Annotated[
        float, typer.Option(min=0.1, help="Time budget; the learning rate follows it.")
    ] = float(FINETUNE_DEFAULTS["minutes"]),
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = float(
        FINETUNE_DEFAULTS["lr"]
    ),
    freeze: Annotated[
        list[str] | None,
        typer.Option(
            help="Keep this part of the network as it is: encoder or decoder (repeatable); "
            "default: every weight trains, which did best in docs/finetune.md."
        ),
    ] = None,
    patience: Annotated[
        int,
        typer.Option(
            min=0,
            help="Stop after this many epochs without progress on the held-out part; "
            "0 spends the whole budget.",
        ),
    ] = int(FINETUNE_DEFAULTS["patience"]),
    batch_size: Annotated[int, typer.Option(min=1, help="Chips per step.")] = 8,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[Device, typer.Option(help="Where to train.")] = "auto",
    resume: Annotated[
        bool, typer.Option(help="Continue the run whose state lies beside --out.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Fine-tune a model on your town's footprints; keep what its card fixes."""
    with user_errors():
        result, area = finetune(
            images,
            labels,
            out,
            model=model,
            aoi=aoi,
            console=Console(stderr=True, soft_wrap=True),
            minutes=minutes,
            lr=lr,
            freeze=list(freeze or []),
            patience=patience,
            batch_size=batch_size,
            seed=seed,
            device=device,
            resume=resume,
            overwrite=overwrite,
            progress=progress,
            command=shlex.join(["geounet", *sys.argv[1:]]),
        )
    f = result.figures
    n = result.strip_buildings
    trust = "too few to trust" if n < 30 else "a rough guide" if n < 100 else "a fair guide"
    typer.echo(
        f"wrote {result.checkpoint} ({result.epochs_run} epochs, {result.elapsed_s / 60:.1f} min, "
        f"{area.buildings} footprints in the training area)"
    )
    typer.echo(
        f"held-out part of your area ({n} buildings, {trust}): pixel IoU {f.get('iou', 0):.3f}, "
        f"object F1 {f.get('object_f1', 0):.3f} at threshold {result.threshold:.2f}"
    )
