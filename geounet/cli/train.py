"""``geounet train``: scenes and footprints in, a checkpoint with its model card out."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from geounet.cli._app import app, user_errors
from geounet.cli._choices import Device, Loss, TrainPrecision
from geounet.io.raster import local_copy
from geounet.train import TrainConfig, train
from geounet.train.copypaste import MAX_PASTED
from geounet.train.finetune import training_area
from geounet.train.training import write_pack


@app.command("train")
def train_command(
    ctx: typer.Context,
    images: Annotated[
        list[str],
        typer.Option(
            "--images",
            "-i",
            help="Training scene(s): files or http(s) COG URLs (copied once into "
            "~/.cache/geounet); repeat the option for several.",
            metavar="PATH",
        ),
    ],
    labels: Annotated[
        list[Path],
        typer.Option(
            "--labels",
            "-l",
            help="Footprints (GeoPackage, GeoJSON, Shapefile; any CRS); repeatable.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write (.safetensors).")],
    place: Annotated[
        list[str] | None,
        typer.Option(
            "--place",
            help="Place (town) of each --images scene, in order; chips are drawn from every "
            "place equally often. Default: one place, chips in proportion to area.",
        ),
    ] = None,
    pack: Annotated[
        Path | None,
        typer.Option(
            help="Write the training data to this .npz pack and stop; train from it where "
            "GDAL is missing with: python -m geounet.train.pack PACK --out M.safetensors",
        ),
    ] = None,
    class_column: Annotated[
        str | None,
        typer.Option(help="Label column naming each footprint's class (one output per class)."),
    ] = None,
    arch: Annotated[str, typer.Option(help="unet (classic U-Net) or smp-unet.")] = "unet",
    encoder: Annotated[
        str, typer.Option(help="segmentation_models_pytorch encoder for smp-unet (no downloads).")
    ] = "resnet18",
    depth: Annotated[int, typer.Option(min=1, max=6, help="U-Net levels.")] = 4,
    width: Annotated[int, typer.Option(min=1, help="U-Net base width (channels).")] = 16,
    upsampling: Annotated[str, typer.Option(help="transpose or bilinear.")] = "transpose",
    dropout: Annotated[float, typer.Option(min=0.0, max=1.0, help="Bottleneck dropout.")] = 0.0,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Checkpoint to fine-tune: its architecture, normalisation, pixel size and "
            "targets are kept (see also geounet finetune)."
        ),
    ] = None,
    aoi: Annotated[
        Path | None,
        typer.Option(
            help="Polygons where the labels are complete: chips, the validation strip and "
            "its truth stay inside them."
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the run whose state lies beside --out (with the options it was "
            "started with: loss, targets, augmentation, chip and batch size, learning rate, seed)."
        ),
    ] = False,
    pixel_size: Annotated[
        float | None,
        typer.Option(help="Ground pixel size to train at, in metres; default: the first scene's."),
    ] = None,
    chip_size: Annotated[int, typer.Option(min=16, help="Training chip size, in pixels.")] = 256,
    batch_size: Annotated[int, typer.Option(min=1, help="Chips per step.")] = 8,
    epochs: Annotated[int, typer.Option(min=1, help="Maximum number of epochs.")] = 100,
    steps_per_epoch: Annotated[int, typer.Option(min=1, help="Optimizer steps per epoch.")] = 50,
    minutes: Annotated[
        float | None, typer.Option(help="Time budget in minutes; the learning rate follows it.")
    ] = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 2e-3,
    val_fraction: Annotated[
        float, typer.Option(help="Eastern fraction of each scene held out for validation.")
    ] = 0.2,
    patience: Annotated[
        int, typer.Option(min=0, help="Epochs without improvement before stopping (0: never).")
    ] = 15,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    loss: Annotated[Loss, typer.Option(help="Training loss.")] = "bce-dice",
    w0: Annotated[float, typer.Option(help="Border weight amplitude (0 disables it).")] = 10.0,
    sigma: Annotated[float, typer.Option(help="Border weight width, in pixels.")] = 5.0,
    wall_w0: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Border weight amplitude inside buildings along walls shared with a "
            "neighbour, so touching roofs are told apart (0 disables it).",
        ),
    ] = 0.0,
    contact_radius: Annotated[
        float,
        typer.Option(
            help="Add a 'contact' output channel: pixels within this many pixels of two "
            "buildings, used to split touching roofs (0 = building channel only)."
        ),
    ] = 0.0,
    body_erosion: Annotated[
        float,
        typer.Option(
            help="Add a 'body' output channel: building interiors this many pixels away "
            "from outlines and neighbours, the seeds that split touching roofs "
            "(0 = no body channel)."
        ),
    ] = 0.0,
    body_target: Annotated[
        str,
        typer.Option(
            help="What the body channel learns: eroded (roofs shrunk by --body-erosion) or "
            "depth (each roof's depth, 0 on its outline to 1 along its middle: a seed "
            "for every roof, narrow ones included; makes the body channel by itself)."
        ),
    ] = "eroded",
    ema_decay: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.99999,
            help="Validate and keep a moving average of the weights with this decay per "
            "step (e.g. 0.995; 0 = the raw weights).",
        ),
    ] = 0.0,
    balance: Annotated[bool, typer.Option(help="Class-balance weighting.")] = True,
    augment: Annotated[bool, typer.Option(help="Augment the training chips.")] = True,
    colour: Annotated[
        str,
        typer.Option(
            help="Colour jitter: mild, or strong (hues +-36 degrees, one chip in five grey) "
            "when the scenes to map have roof colours the training scenes lack."
        ),
    ] = "mild",
    copy_paste: Annotated[
        float,
        typer.Option(
            help=f"Chance that a training chip gets up to {MAX_PASTED} whole buildings from "
            "other chips "
            "pasted in, most against a roof already there: touching roofs to separate, "
            "for dense settlements (0 = off; e.g. 0.5).",
        ),
    ] = 0.0,
    recolour: Annotated[
        float,
        typer.Option(
            help="Chance that each building of a training chip gets a random colour of its "
            "own (any hue), the ground unchanged: roofs found by outline and texture, "
            "not colour (0 = off; e.g. 0.5).",
        ),
    ] = 0.0,
    threshold: Annotated[
        float | None,
        typer.Option(help="Fixed default threshold for the card; default: chosen on validation."),
    ] = None,
    device: Annotated[Device, typer.Option(help="Where to train.")] = "auto",
    precision: Annotated[
        TrainPrecision,
        typer.Option(help="auto (bfloat16 on AMX CPUs, AMP on CUDA), float32, bfloat16."),
    ] = "auto",
    workers: Annotated[int, typer.Option(min=0, help="Data-loader worker processes.")] = 1,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train the U-Net on scenes and building footprints; keep the best checkpoint."""
    with user_errors():  # URLs are copied once into the cache: training reads scenes whole
        ctx.params["images"] = [local_copy(image) for image in images]
    cfg = config_from_options(ctx.params, command=shlex.join(["geounet", *sys.argv[1:]]))
    if pack is not None:
        with user_errors():
            data = write_pack(cfg, pack)
        typer.echo(
            f"wrote {pack}: {len(data.scenes)} scene(s) of {len(data.places)} place(s) "
            f"({', '.join(data.places)}), {data.footprints} footprints"
        )
        return
    with user_errors():
        area = training_area(cfg.images, cfg.labels, aoi).geometry if aoi is not None else None
        result = train(
            cfg,
            console=Console(stderr=True, soft_wrap=True),
            aoi=area,
            explicit=typed_options(ctx),
        )
    figures = "  ".join(
        f"{k} {v:.4f}" for k, v in result.figures.items() if k not in ("threshold", "score")
    )
    typer.echo(
        f"wrote {result.checkpoint} (best epoch {result.best_epoch} of {result.epochs_run}, "
        f"stopped by {result.stopped}, {result.elapsed_s / 60:.1f} min)"
    )
    typer.echo(f"validation at threshold {result.threshold:.2f}: {figures}")


_FIELDS = {"pixel_size": "pixel_size_m", "place": "places"}
"""CLI parameter names that differ from their :class:`TrainConfig` field."""

_NOT_CONFIG = {"pack", "aoi"}
"""CLI parameters that are not :class:`TrainConfig` fields."""


def config_from_options(params: dict[str, object], command: str) -> TrainConfig:
    """The :class:`TrainConfig` of the command's options (each field from its option)."""
    fields = {_FIELDS.get(k, k): v for k, v in params.items() if k not in _NOT_CONFIG}
    fields["places"] = list(fields.get("places") or [])  # type: ignore[call-overload]
    return TrainConfig(**fields, command=command)  # type: ignore[arg-type]


def typed_options(ctx: typer.Context) -> set[str]:
    """The :class:`TrainConfig` fields whose options were typed on the command line."""
    typed = set()
    for name in ctx.params:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name == "COMMANDLINE":
            typed.add(_FIELDS.get(name, name))
    return typed
