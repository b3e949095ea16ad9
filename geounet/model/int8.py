"""int8 inference on a CPU: the model quantised by NNCF and run by OpenVINO.

Measured on this project's machine (``benchmarks/int8_candidates.py``): OpenVINO's int8
runs a member network twice as fast as PyTorch's bfloat16 autocast, where PyTorch's own
int8 gained a quarter and ONNX Runtime was slower. The quantised model is an OpenVINO IR
beside its checkpoint, ``<stem>.int8.xml`` and ``<stem>.int8.bin`` (XML and raw weights:
nothing is unpickled), and records the SHA-256 of the checkpoint it was made from, so a
retrained checkpoint never runs with an old quantisation. OpenVINO and NNCF are optional
(``pip install geounet[int8]``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geounet.core.provenance import file_sha256
from geounet.errors import InputError
from geounet.io.atomic import atomic_path
from geounet.model.checkpoint import Checkpoint
from geounet.model.device import resolve_precision
from geounet.model.network import Ensemble, fuse_for_inference

SUFFIX = ".int8.xml"
CHECK_SUFFIX = ".int8.json"
TOLERANCE = {"pixel_iou": 0.005, "object_f1": 0.01}
"""How far int8's figures may be from the default precision's on every place's validation
strip for ``--precision auto`` to run it (``geounet quantize --labels`` measures them)."""
EPS = Ensemble.EPS
"""Probabilities are clamped to ``[EPS, 1 - EPS]`` before the logit, as ensembles do."""
RT_KEY = ["geounet", "model_sha256"]


def int8_path(checkpoint: Path) -> Path:
    """Where the int8 model of a checkpoint lives: ``<stem>.int8.xml`` beside it."""
    return checkpoint.with_name(checkpoint.name.removesuffix(".safetensors") + SUFFIX)


def check_path(checkpoint: Path) -> Path:
    """Where the int8 model's check lives: ``<stem>.int8.json`` beside the checkpoint."""
    return checkpoint.with_name(checkpoint.name.removesuffix(".safetensors") + CHECK_SUFFIX)


def int8_checked(checkpoint: Path, reference: str | None = None) -> bool:
    """Whether the checkpoint's int8 model was checked within :data:`TOLERANCE`.

    The check (written by ``geounet quantize --labels``) must name this checkpoint and
    this int8 model by their SHA-256: a retrained checkpoint or a new quantisation is
    unchecked until it is measured again. It must also have been measured against
    ``reference``, by default the precision ``--precision auto`` runs on this CPU
    (:func:`default_precision`): the int8 model's float layers and the figures it must
    match are those of that precision, bfloat16 on a CPU with bfloat16 units, float32 on
    the many without.
    """
    path, ir = check_path(checkpoint), int8_path(checkpoint).with_suffix(".bin")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict):
        return False
    check = checks_of(record).get(reference or default_precision(), {})
    return (
        isinstance(check, dict)
        and check.get("within") is True
        and ir.is_file()
        and record.get("model_sha256") == file_sha256(checkpoint)
        and record.get("int8_sha256") == file_sha256(ir)
    )


def checks_of(record: dict[str, Any]) -> dict[str, Any]:
    """The checks of an int8 check record, by the precision each was measured against.

    Records written before 2026-12-06 hold one check (``reference``, ``places``,
    ``within`` at the top level); later ones a ``checks`` table.
    """
    if isinstance(record.get("checks"), dict):
        return dict(record["checks"])
    if isinstance(record.get("reference"), str):
        return {record["reference"]: {k: record[k] for k in ("places", "within") if k in record}}
    return {}


def default_precision() -> str:
    """The precision ``--precision auto`` autocasts to on this CPU: bfloat16 or float32."""
    return str(resolve_precision(torch.device("cpu"), "auto")).removeprefix("torch.")


def int8_units() -> bool:
    """Whether OpenVINO finds int8 instructions on this CPU (VNNI, AMX...)."""
    if openvino_missing():
        return False
    import openvino as ov

    try:
        return "INT8" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except RuntimeError:
        return False


def cpu_name() -> str:
    """The CPU's name as OpenVINO reports it (recorded beside each check)."""
    try:
        import openvino as ov

        return str(ov.Core().get_property("CPU", "FULL_DEVICE_NAME"))
    except (ImportError, RuntimeError):
        import platform

        return platform.processor() or platform.machine()


def float_hint() -> str:
    """OpenVINO's precision for the layers left in float: the default precision's.

    Where ``--precision auto`` runs bfloat16 (a CPU with native bfloat16 units), the float
    layers of the int8 model run in bfloat16 too, as the reference it was checked against
    does; elsewhere in float32. On this project's AMX CPU a 1024 px tile then took 0.173
    s against 0.191 s with float32 layers, peaking at 907 MB against 929 MB, with every
    place's strip figures at least as close to bfloat16's (``benchmarks/README.md``).
    """
    return "bf16" if default_precision() == "bfloat16" else "f32"


def openvino_missing() -> str | None:
    """Why int8 cannot run here (``None`` if OpenVINO is installed)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "OpenVINO is not installed (pip install geounet[int8])"
    return None


def quantize(checkpoint: Checkpoint, calibration: Sequence[torch.Tensor], out: Path) -> Path:
    """Quantise a model to int8 with NNCF, calibrated on normalised tiles; write its IR.

    Args:
        checkpoint: The model (loaded from a file: its SHA-256 binds the IR to it).
        calibration: Normalised tiles, each (1, bands, H, W), from validation data.
        out: The ``.int8.xml`` to write (its ``.bin`` beside it).

    Returns:
        ``out``.

    Raises:
        InputError: If OpenVINO or NNCF is missing, the checkpoint has no file, or there
            is no calibration tile.
    """
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise InputError(
            f"quantising needs OpenVINO and NNCF ({exc.name} is missing): pip install geounet[int8]"
        ) from exc
    if checkpoint.source is None:
        raise InputError("only a checkpoint read from a file can be quantised")
    if not calibration:
        raise InputError("no calibration tile: the validation strips hold no whole tile")
    net = _probability_net(checkpoint.model).eval()
    bands = checkpoint.card.model.in_channels
    with torch.inference_mode():
        model = ov.convert_model(
            net,
            example_input=calibration[0],
            input=[ov.PartialShape([-1, bands, -1, -1])],
        )
    data = nncf.Dataset([t.contiguous().numpy() for t in calibration])
    # Chosen by benchmarks/int8_settings.py --leave-one-place-out (each place scored by a
    # model calibrated on the other three, as a user's town is): activation ranges from the
    # calibration tiles' global minimum and maximum, full bias correction, and each
    # network's first convolution (on the raw bands) left in float: a mean probability
    # difference from bfloat16 of 0.0015, against 0.0067 with NNCF's defaults.
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    quantised = nncf.quantize(
        model,
        data,
        subset_size=len(calibration),
        fast_bias_correction=False,
        ignored_scope=nncf.IgnoredScope(names=_first_convolutions(model, bands)),
        advanced_parameters=AdvancedQuantizationParameters(
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX
        ),
    )
    quantised.set_rt_info(file_sha256(checkpoint.source), RT_KEY)
    with atomic_path(out) as tmp:  # the XML lands last: an IR without it is never read
        ov.save_model(quantised, str(tmp), compress_to_fp16=False)
        tmp.with_suffix(".bin").replace(out.with_suffix(".bin"))
    return out


def _first_convolutions(model: Any, bands: int) -> list[str]:
    """Names of the convolutions that read the input bands (one per network)."""
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Convolution":
            continue
        weights = op.input_value(1).get_partial_shape()
        if weights.is_static and list(weights.to_shape())[1] == bands:
            names.append(op.get_friendly_name())
    return names


class _Probabilities(nn.Module):
    """A network's probabilities (OpenVINO has no logit: the logit is taken after it)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.net, Ensemble):
            return self.net.probabilities(x)
        return torch.sigmoid(self.net(x).float())


def _probability_net(model: nn.Module) -> _Probabilities:
    """The model's probabilities, batch norms folded.

    An ensemble is folded member by member: folding traces a network, and the trace of a
    whole ensemble would end in its logit, which OpenVINO cannot convert.
    """
    if isinstance(model, Ensemble):
        folded = Ensemble([fuse_for_inference(m) for m in model.members])
        folded.input_scale = model.input_scale.clone()
        folded.input_shift = model.input_shift.clone()
        return _Probabilities(folded)
    return _Probabilities(fuse_for_inference(model))


class OpenVinoNet(nn.Module):
    """An OpenVINO model behind PyTorch's interface: tensor in, logits out.

    The model is compiled for the shape of the tiles it is given, and again for a new
    shape (the last :attr:`KEEP` shapes stay compiled: a rotated non-square tile comes
    back). With a static shape OpenVINO plans its buffers for it: after a 1024 px tile the
    peak memory was about 100 MB lower than with the model compiled once for any shape,
    at about the same speed (``benchmarks/int8_memory.py``).
    """

    KEEP = 2

    def __init__(self, core: Any, model: Any, config: dict[str, Any]):
        super().__init__()
        self.core, self.model, self.config = core, model, config
        self.compiled: dict[tuple[int, ...], Any] = {}
        # one call at a time: a compiled model's own request is not thread-safe, and a
        # dask worker may run several tasks in threads
        self.lock = threading.Lock()

    def compiled_for(self, shape: tuple[int, ...]) -> Any:
        """The model compiled for inputs of this shape."""
        if shape in self.compiled:
            self.compiled[shape] = self.compiled.pop(shape)  # most recently used last
        else:
            while len(self.compiled) >= self.KEEP:  # free the oldest buffers first
                del self.compiled[next(iter(self.compiled))]
            self.model.reshape(list(shape))
            self.compiled[shape] = self.core.compile_model(self.model, "CPU", self.config)
        return self.compiled[shape]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x`` (float32, on the CPU)."""
        array = np.ascontiguousarray(x.detach().float().cpu().numpy())
        with self.lock:  # the output is the request's buffer: read before the next call
            prob = torch.from_numpy(np.asarray(self.compiled_for(array.shape)(array)[0]))
            return torch.logit(prob, eps=EPS)


def load_int8(checkpoint: Checkpoint, threads: int | None = None) -> tuple[OpenVinoNet | None, str]:
    """The int8 model of a checkpoint for this CPU (compiled per tile shape), or why not.

    Args:
        checkpoint: The model; its int8 IR is looked for beside its file.
        threads: Inference threads (default: torch's).

    Returns:
        ``(model, "")``, or ``(None, reason)`` when OpenVINO is missing, the checkpoint
        has no int8 model, or the int8 model was made from another checkpoint.
    """
    missing = openvino_missing()
    if missing:
        return None, missing
    if checkpoint.source is None:
        return None, "the model was not read from a file"
    path = int8_path(checkpoint.source)
    if not path.is_file() or not path.with_suffix(".bin").is_file():
        return None, f"{checkpoint.source.name} has no int8 model ({path.name}; geounet quantize)"
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    made_from = model.get_rt_info(RT_KEY).astype(str) if model.has_rt_info(RT_KEY) else ""
    if made_from != file_sha256(checkpoint.source):
        return None, f"{path.name} was made from another {checkpoint.source.name} (quantise again)"
    config = {
        "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
        "INFERENCE_PRECISION_HINT": float_hint(),
    }
    return OpenVinoNet(core, model, config), ""
