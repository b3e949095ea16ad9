import importlib.util
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from geounet.errors import CheckpointError
from geounet.model.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from geounet.model.network import ModelConfig, build_model, fuse_for_inference


def _forward(cfg: ModelConfig, height: int, width: int, batch: int = 2) -> torch.Tensor:
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        return model(torch.randn(batch, cfg.in_channels, height, width))


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig(depth=2, base_width=4, upsampling="transpose"),
        ModelConfig(depth=2, base_width=4, upsampling="bilinear"),
        ModelConfig(depth=3, base_width=4, dropout=0.3),
        ModelConfig(depth=3, base_width=4, batch_norm=False, upsampling="bilinear"),
        ModelConfig(depth=1, base_width=4, in_channels=4, classes=3),
        ModelConfig(depth=5, base_width=2, in_channels=1, classes=2),
    ],
    ids=["transpose", "bilinear", "dropout", "no-batch-norm", "depth1", "depth5"],
)
def test_classic_unet_output_matches_input_size_and_classes(cfg: ModelConfig) -> None:
    m = cfg.size_multiple
    assert m == 2**cfg.depth
    h, w = 3 * m, 5 * m  # not square, several pools deep
    out = _forward(cfg, h, w)
    assert out.shape == (2, cfg.classes, h, w)
    assert torch.isfinite(out).all()


def test_classic_unet_is_composed_as_configured() -> None:
    plain = build_model(ModelConfig(depth=3, base_width=4, batch_norm=False))
    modules = list(plain.modules())
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in modules)
    assert not any(isinstance(x, torch.nn.Dropout2d) for x in modules)
    assert sum(isinstance(x, torch.nn.MaxPool2d) for x in modules) == 1  # shared, used 3 times
    assert sum(isinstance(x, torch.nn.ConvTranspose2d) for x in modules) == 3
    bilinear = build_model(ModelConfig(depth=3, base_width=4, upsampling="bilinear"))
    assert not any(isinstance(x, torch.nn.ConvTranspose2d) for x in bilinear.modules())
    dropout = build_model(ModelConfig(depth=3, base_width=4, dropout=0.5))
    assert sum(isinstance(x, torch.nn.Dropout2d) for x in dropout.modules()) == 1


def test_dropout_is_active_in_training_only() -> None:
    cfg = ModelConfig(depth=2, base_width=4, dropout=0.5)
    torch.manual_seed(0)
    model = build_model(cfg)
    x = torch.randn(1, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


ENCODERS = ["resnet18", "mobilenet_v2", "efficientnet-b0"]


def _smp_encoder(name: str) -> str:
    if importlib.util.find_spec("segmentation_models_pytorch") is None:
        pytest.skip("segmentation_models_pytorch is not installed")
    import segmentation_models_pytorch as smp

    if name not in smp.encoders.get_encoder_names():
        pytest.skip(f"smp has no encoder {name}")
    return name


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("depth", [3, 5])
def test_smp_unet_output_matches_input_size_and_classes(encoder: str, depth: int) -> None:
    cfg = ModelConfig(
        arch="smp-unet", encoder_name=_smp_encoder(encoder), depth=depth, in_channels=4, classes=2
    )
    m = cfg.size_multiple
    assert m == 2**depth
    out = _forward(cfg, 2 * m, 3 * m, batch=1)
    assert out.shape == (1, 2, 2 * m, 3 * m)


def test_smp_unet_honours_depth() -> None:
    """``depth`` is the encoder depth of smp-unet: one decoder stage per level."""
    encoder = _smp_encoder("resnet18")
    for depth in (3, 4, 5):
        model = build_model(ModelConfig(arch="smp-unet", encoder_name=encoder, depth=depth))
        assert len(model.decoder.blocks) == depth  # type: ignore[union-attr,arg-type]
        assert model.encoder._depth == depth  # type: ignore[union-attr]
    with pytest.raises(CheckpointError, match="depth 1 to 5"):
        build_model(ModelConfig(arch="smp-unet", encoder_name=encoder, depth=6))


def test_smp_checkpoint_round_trip_predicts_identically(tmp_path: Path) -> None:
    """The classic U-Net's round trip is tested with training (tests/test_train.py)."""
    cfg = ModelConfig(arch="smp-unet", encoder_name=_smp_encoder("resnet18"), depth=3)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    path = save_checkpoint(tmp_path / "smp.safetensors", ModelCard(model=cfg), model)
    loaded = load_checkpoint(path)
    assert loaded.card.model == cfg
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))


def test_unknown_architecture_or_encoder_is_refused() -> None:
    with pytest.raises(CheckpointError, match="unknown architecture"):
        build_model(ModelConfig(arch="vit"))  # type: ignore[arg-type]
    _smp_encoder("resnet18")
    with pytest.raises(CheckpointError, match="unknown encoder"):
        build_model(ModelConfig(arch="smp-unet", encoder_name="no-such-encoder"))


def test_config_round_trips_through_a_dict() -> None:
    cfg = ModelConfig(arch="smp-unet", depth=3, encoder_name="mobilenet_v2", dropout=0.1)
    assert ModelConfig.from_dict({**cfg.to_dict(), "from_a_newer_version": 1}) == cfg


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig(depth=2, base_width=4),
        ModelConfig(arch="smp-unet", depth=3, classes=2),
        ModelConfig(depth=2, base_width=4, members=2),
    ],
    ids=["unet", "smp-unet", "ensemble"],
)
def test_batch_norm_fusion_keeps_outputs_and_leaves_the_model_alone(cfg: ModelConfig) -> None:
    torch.manual_seed(0)
    model = build_model(cfg)
    # non-trivial running statistics and affine parameters, as after training
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, cfg.in_channels, 64, 64) * 3 + 1)
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-1.0, 1.0)
    model.eval()
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    fused = fuse_for_inference(model)
    assert n_bn > 0
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == n_bn
    x = torch.randn(2, cfg.in_channels, 64, 64)
    with torch.no_grad():
        expected, got = model(x), fused(x)
    # folding reorders float32 arithmetic: agreement to float32 rounding of the output's
    # scale (the deeper smp-unet's outputs reach 61, and differ by 3e-4 on an AVX2 CPU)
    scale = float(expected.abs().max())
    assert torch.allclose(got, expected, atol=1e-5 * scale, rtol=1e-4)


def test_folding_is_safe_while_other_threads_predict() -> None:
    # a dask worker with several threads loads the model in one while another predicts;
    # torch.fx tracing patches Module.__call__ for the whole process, so a forward pass
    # in another thread failed while a model was traced, unless the two are kept apart
    import threading

    from geounet.inference.engine import TilePredictor
    from geounet.model.checkpoint import Checkpoint, ModelCard

    cfg = ModelConfig(in_channels=3, classes=1, depth=2, base_width=4)
    model = build_model(cfg).eval()
    predictor = TilePredictor(
        Checkpoint(ModelCard(model=cfg, bands=("red", "green", "blue")), model),
        torch.device("cpu"),
        torch.float32,
    )
    errors: list[BaseException] = []
    done = threading.Event()
    runs = 0

    def predict() -> None:
        nonlocal runs
        try:
            while not done.is_set():
                predictor(np.zeros((1, 3, 32, 32), dtype=np.uint8))
                runs += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=predict)
    worker.start()
    try:
        for _ in range(30):
            assert not any(
                isinstance(m, torch.nn.BatchNorm2d) for m in fuse_for_inference(model).modules()
            )
    finally:
        done.set()
        worker.join()
    assert errors == []
    assert runs > 0


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_checkpoint_gets_the_permissions_of_any_new_file(
    tmp_path: Path, umask: int, mode: int
) -> None:
    # safetensors alone writes 0o600: a model nobody else on a cluster could read
    cfg = ModelConfig(depth=2, base_width=4)
    old = os.umask(umask)
    try:
        save_checkpoint(tmp_path / "m.safetensors", ModelCard(model=cfg), build_model(cfg))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.safetensors").stat().st_mode) == mode
