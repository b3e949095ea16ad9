"""Ensembles: one checkpoint holding several trained networks whose probabilities are averaged.

Networks trained with other seeds or augmentations make different mistakes; the mean of
their probabilities is usually better than any one of them, at the cost of one forward
pass per member. The members must agree on what prediction reads from a card
(architecture, input bands, ground pixel size, output channels), so the ensemble is an
ordinary checkpoint: ``geounet predict``, ``calibrate`` and ``evaluate`` use it unchanged.
Members with other normalisation statistics (e.g. runs with other seeds) each get their
own: the ensemble keeps the first member's normalisation and maps the inputs of the
others to theirs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from geounet import __version__
from geounet.core.extents import merge_extents
from geounet.errors import InputError, OutputExistsError
from geounet.model.checkpoint import (
    Checkpoint,
    ModelCard,
    Normalization,
    load_checkpoint,
    save_checkpoint,
)
from geounet.model.network import Ensemble, build_model

Affine = tuple[list[float], list[float]]
"""Per-band scale and shift of a member's inputs."""


def members_of(model: nn.Module) -> list[nn.Module]:
    """The single networks of ``model``: its members if it is an ensemble, else itself."""
    return list(model.members) if isinstance(model, Ensemble) else [model]


def _affine(card: ModelCard, net: int, model: nn.Module, ref: Normalization) -> Affine:
    """Per-band ``(scale, shift)`` from inputs normalised by ``ref`` to network ``net``'s.

    Network ``net`` of a checkpoint (``card``, ``model``) was trained on inputs normalised
    by its card (``k``, ``mean``, ``std``). Raw values ``r`` are normalised as
    ``(r * k - mean) / std``, so for ``x`` normalised by ``ref`` the network wants
    ``x * a + b`` with ``a = std_ref * k / (k_ref * std)`` and
    ``b = (mean_ref * k / k_ref - mean) / std``, then, if the checkpoint is itself an
    ensemble, that network's own input affine.
    """
    own, k = card.normalization, card.normalization.scale / ref.scale
    a = [sr * k / sj for sr, sj in zip(ref.std, own.std, strict=True)]
    b = [(mr * k - mj) / sj for mr, mj, sj in zip(ref.mean, own.mean, own.std, strict=True)]
    if isinstance(model, Ensemble):  # compose with the member's own input affine
        s, t = model.input_scale[net].tolist(), model.input_shift[net].tolist()
        a = [ai * si for ai, si in zip(a, s, strict=True)]
        b = [bi * si + ti for bi, si, ti in zip(b, s, t, strict=True)]
    return a, b


def _disagreement(first: ModelCard, other: ModelCard) -> str | None:
    """What prediction would read differently from two members' cards (``None``: nothing)."""
    a, b = dataclasses.replace(first.model, members=1), dataclasses.replace(other.model, members=1)
    checks = (
        ("architecture", a, b),
        ("input bands", first.bands, other.bands),
        ("ground pixel size", first.pixel_size_m, other.pixel_size_m),
        ("output channels", first.class_names, other.class_names),
    )
    for what, x, y in checks:
        if x != y:
            values = f"{x} vs {y}"
            return what if len(values) > 80 else f"{what} ({values})"
    return None


def combine(
    paths: Sequence[str | Path], out: str | Path, command: str = "", overwrite: bool = False
) -> ModelCard:
    """Write one checkpoint whose network averages the probabilities of several checkpoints.

    Members that are ensembles themselves contribute each of their networks. The card takes
    the first checkpoint's tile size and the mean of the members' thresholds; choose the
    ensemble's own thresholds afterwards with :func:`geounet.train.calibrate`.

    Args:
        paths: Two or more checkpoints of the same architecture, bands, pixel size and
            output channels.
        out: Checkpoint to write (``.safetensors``), atomically.
        command: The command line, for the card's provenance.
        overwrite: Replace an existing ``out``.

    Returns:
        The card written.

    Raises:
        InputError: If fewer than two checkpoints are given or they disagree.
        OutputExistsError: If ``out`` exists and ``overwrite`` is false.
        CheckpointError: If a checkpoint is unusable.
    """
    out = Path(out)
    if len(paths) < 2:
        raise InputError(f"an ensemble needs at least two checkpoints, got {len(paths)}")
    if out.suffix != ".safetensors":
        raise InputError(f"--out must end in .safetensors (got {out.name})")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
    checkpoints: list[Checkpoint] = [load_checkpoint(p) for p in paths]
    first = checkpoints[0].card
    for path, ck in zip(paths[1:], checkpoints[1:], strict=True):
        differs = _disagreement(first, ck.card)
        if differs is not None:
            raise InputError(
                f"{path} cannot join {paths[0]} in an ensemble: its {differs} differs; "
                "combine models trained with the same architecture and data layout"
            )
    networks = [
        (net, _affine(ck.card, i, ck.model, first.normalization))
        for ck in checkpoints
        for i, net in enumerate(members_of(ck.model))
    ]
    cfg = dataclasses.replace(first.model, members=len(networks))
    model = build_model(cfg)
    assert isinstance(model, Ensemble)
    for i, (source, (scale, shift)) in enumerate(networks):
        model.members[i].load_state_dict(source.state_dict())
        model.input_scale[i] = torch.tensor(scale)
        model.input_shift[i] = torch.tensor(shift)
    provenance = {
        "ensemble": ", ".join(Path(p).name for p in paths),
        "command": command,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "geounet": __version__,
    }
    for i, ck in enumerate(checkpoints, start=1):
        provenance.update({f"member{i}.{k}": v for k, v in ck.card.provenance.items()})
    card = dataclasses.replace(
        first,
        model=cfg,
        threshold=round(sum(ck.card.threshold for ck in checkpoints) / len(checkpoints), 4),
        body_threshold=round(
            sum(ck.card.body_threshold for ck in checkpoints) / len(checkpoints), 4
        ),
        seed_area_m2=round(sum(ck.card.seed_area_m2 for ck in checkpoints) / len(checkpoints), 4),
        min_confidence=round(
            sum(ck.card.min_confidence for ck in checkpoints) / len(checkpoints), 4
        ),
        targets=first.targets
        if all(ck.card.targets == first.targets for ck in checkpoints)
        else {},
        provenance=provenance,
        trained_on=merge_extents(*(ck.card.trained_on for ck in checkpoints)),
    )
    save_checkpoint(out, card, model)
    return card
