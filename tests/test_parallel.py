"""The result of a prediction does not depend on how it ran."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from distributed import Client, LocalCluster

from geounet.core.tiling import plan_tiles
from geounet.errors import InputError
from geounet.inference.engine import TilePredictor, local_tile_batches
from geounet.inference.executors import TileJob, dask_tile_batches
from geounet.inference.options import PredictOptions
from geounet.inference.scene import predict_scene
from geounet.model.checkpoint import load_checkpoint
from tests.conftest import MakeScene


def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(path) as src:
        return src.read(1), src.read_masks(1)


def test_dask_batches_match_local_batches(make_scene: MakeScene, tiny_model: Path) -> None:
    alpha = np.full((90, 70), 255)
    alpha[:30, :30] = 0
    scene = make_scene(height=90, width=70, alpha=alpha)
    plan = plan_tiles(90, 70, 32, 8, 4, multiple=4)
    ckpt = load_checkpoint(tiny_model)
    predictor = TilePredictor(ckpt, torch.device("cpu"), torch.float32)
    with rasterio.open(scene) as src:
        local_batches = list(local_tile_batches(src, [1, 2, 3], plan, predictor, 3))
    local = [r for batch in local_batches for r in batch]
    job = TileJob(str(scene), 1.0, (1, 2, 3), str(tiny_model), "cpu", "float32")
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False) as cluster,
        Client(cluster) as client,
    ):
        batches = list(dask_tile_batches(client, job, plan, batch_size=3, in_flight=2))
    assert [len(b) for b in batches] == [len(b) for b in local_batches]
    assert all(len(b) == 3 for b in batches[:-1]), "batches are full across tile rows"
    remote = [r for batch in batches for r in batch]
    assert [t.index for t, _, _ in remote] == [t.index for t in plan]
    skipped = 0
    for (t1, p1, v1), (t2, p2, v2) in zip(local, remote, strict=True):
        assert t1 == t2
        np.testing.assert_array_equal(v1, v2)
        if p1 is None:
            skipped += 1
            assert p2 is None
        else:
            np.testing.assert_array_equal(p1, p2)
    assert skipped >= 1, "the all-no-data corner tile is never sent to the model"


@pytest.mark.slow
def test_sequential_threads_and_processes_give_identical_outputs(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    scene = make_scene(height=150, width=110, seed=7)
    base = dict(tile=64, overlap=16, precision="float32", device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # the reference: one thread in every torch op
        one = predict_scene(scene, tmp_path / "one", tiny_model, PredictOptions(**base))  # type: ignore[arg-type]
    finally:
        torch.set_num_threads(threads)
    seq = predict_scene(scene, tmp_path / "seq", tiny_model, PredictOptions(**base))  # type: ignore[arg-type]
    par = predict_scene(
        scene,
        tmp_path / "par",
        tiny_model,
        PredictOptions(**base, workers=2),  # type: ignore[arg-type]
    )
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False) as cluster:
        thr = predict_scene(
            scene,
            tmp_path / "thr",
            tiny_model,
            PredictOptions(**base, scheduler=cluster.scheduler_address),  # type: ignore[arg-type]
        )
    ref = read(one.probability)
    for other in (seq, par, thr):
        got = read(other.probability)
        np.testing.assert_array_equal(ref[0], got[0])
        np.testing.assert_array_equal(ref[1], got[1])
        assert other.buildings == one.buildings


def test_unreachable_scheduler_is_a_clear_error(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import geounet.inference.executors

    monkeypatch.setattr(geounet.inference.executors, "CONNECT_TIMEOUT", "1s")
    monkeypatch.setattr(geounet.inference.executors, "PROBE_SECONDS", 1.0)
    with pytest.raises(
        InputError, match="cannot reach the dask scheduler|no dask scheduler answered"
    ):
        predict_scene(
            make_scene(),
            tmp_path / "out",
            tiny_model,
            PredictOptions(tile=64, scheduler="tcp://127.0.0.1:9"),
        )
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_closing_the_local_batches_stops_the_reader(
    make_scene: MakeScene, tiny_model: Path
) -> None:
    """An error in the consumer closes the generator: its read-ahead thread must be gone
    before the caller closes the dataset it reads (else a read of a closed dataset)."""
    import threading

    scene = make_scene(height=90, width=70)
    plan = plan_tiles(90, 70, 32, 8, 4, multiple=4)
    predictor = TilePredictor(load_checkpoint(tiny_model), torch.device("cpu"), torch.float32)
    with rasterio.open(scene) as src:
        batches = local_tile_batches(src, [1, 2, 3], plan, predictor, 1)
        next(batches)
        readers = [t for t in threading.enumerate() if t.name.startswith("geounet-read")]
        assert readers, "a read-ahead thread is running"
        batches.close()
        assert not any(t.is_alive() for t in readers)
