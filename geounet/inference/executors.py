"""Dask-parallel prediction: batches of tiles run on dask.distributed workers.

Workers are plain functions, numpy in and numpy out: each opens the scene itself (no
rasterio handle crosses a process or thread), reads its windows and runs the model, which
it loads once per worker process. The driver submits batches a few ahead of the one it is
stitching, takes results back in plan order, and is the only writer of the output, so the
result is the same however many workers ran it. The scheduler is dask's: a LocalCluster
for ``--workers N``, or any existing cluster by address (``--scheduler tcp://...``),
e.g. one started on SLURM with dask-jobqueue.

Workers that are threads of the driver's process (an in-process cluster) take
:data:`GDAL_LOCK` to read, and the driver holds it while the consumer of
:func:`dask_tile_batches` writes, because GDAL's block cache is shared by the process.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from geounet.core.tiling import Tile, TilePlan
from geounet.errors import InputError
from geounet.inference.engine import (
    TilePredictor,
    infer_batch,
    make_predictor,
    plan_batches,
    read_tiles,
    working_grid,
)
from geounet.inference.options import PredictOptions
from geounet.io.raster import GDAL_LOCK, Reader, ground_pixel_size_m, open_scene
from geounet.io.remote import is_local
from geounet.model.checkpoint import Checkpoint, ModelCard
from geounet.model.device import select_device

if TYPE_CHECKING:
    from distributed import Client

    from geounet.inference.stitch import TileResult


CONNECT_TIMEOUT = "20s"
"""How long to wait for an existing dask scheduler to answer."""

PROBE_SECONDS = 20.0
"""How long :func:`check_scheduler` waits for a dask scheduler's answer to ``identity``."""


def check_scheduler(address: str, seconds: float | None = None) -> None:
    """Check that a dask scheduler answers at ``address`` before a client connects.

    dask's ``Client(address, timeout=...)`` waits for ever when something else listens
    there (a web server, the dashboard's port): the connection opens, and the handshake
    waits for an answer that never comes. This asks the address for its ``identity``
    within a hard time limit first.

    Raises:
        InputError: If the address is malformed, nothing answers, or what answers is not
            a dask scheduler.
    """
    import asyncio

    from distributed.comm import connect

    if address.startswith("inproc://"):
        return  # a cluster in this very process, running on its own event loop
    limit = PROBE_SECONDS if seconds is None else seconds

    async def identity() -> object:
        comm = await connect(address, timeout=limit)
        try:
            await comm.write({"op": "identity"})
            return await comm.read()
        finally:
            comm.abort()

    hint = "check the address (tcp://host:8786) and that the scheduler is running"
    try:
        answer = asyncio.run(asyncio.wait_for(identity(), limit))
    except ValueError as exc:  # an unknown scheme or a malformed address
        raise InputError(f"--scheduler {address!r} is not a dask address: {exc}") from exc
    except TimeoutError as exc:
        raise InputError(
            f"no dask scheduler answered at {address} within {limit:.0f} s; {hint}"
        ) from exc
    except Exception as exc:  # noqa: BLE001 (any failed connection is the same to the user)
        raise InputError(f"cannot reach the dask scheduler at {address} ({exc}); {hint}") from exc
    if not isinstance(answer, dict) or answer.get("type") != "Scheduler":
        raise InputError(f"what answers at {address} is not a dask scheduler; {hint}")


@dataclass(frozen=True)
class TileJob:
    """Everything a worker needs to predict tiles of one scene (small and picklable).

    Attributes:
        scene: Path of the scene, as the workers see it.
        factor: Resampling factor of the working grid (1.0 = the scene's own grid).
        bands: 1-based bands, in the model's order.
        model: Path of the checkpoint, as the workers see it.
        device: ``auto``, ``cpu`` or ``cuda`` (resolved on each worker).
        precision: ``auto``, ``float32``, ``bfloat16`` or ``float16``.
        value_range: Raw values mapped onto 0..255 before normalisation, or ``None``.
        tta: Test-time augmentation (``None``: the model card's).
        compiled: Run the network through ``torch.compile`` (:mod:`geounet.model.compiled`).
    """

    scene: str
    factor: float
    bands: tuple[int, ...]
    model: str
    device: str = "auto"
    precision: str = "auto"
    value_range: tuple[float, float] | None = None
    tta: str | None = None
    compiled: bool = False


@lru_cache(maxsize=2)
def _worker_predictor(
    model: str,
    device: str,
    precision: str,
    value_range: tuple[float, float] | None,
    tta: str | None = None,
    compiled: bool = False,
) -> TilePredictor:
    """Load the model once per worker process (cached across tasks)."""
    from geounet.model.checkpoint import load_checkpoint

    predictor, _, _ = make_predictor(
        load_checkpoint(model), select_device(device), precision, value_range, tta
    )
    if compiled:
        predictor.compile()
    return predictor


def run_batch(job: TileJob, tiles: list[Tile]) -> list[TileResult]:
    """Worker task: read and predict one batch of tiles.

    Args:
        job: The scene, model and settings.
        tiles: The tiles of one batch.

    Returns:
        One result per tile, in order.
    """
    predictor = _worker_predictor(
        job.model, job.device, job.precision, job.value_range, job.tta, job.compiled
    )
    bands = list(job.bands)
    with GDAL_LOCK, open_scene(job.scene) as src, working_grid(src, job.factor) as grid:
        batch = read_tiles(grid, bands, tiles)
    return infer_batch(batch, predictor)


def dask_tile_batches(
    client: Client, job: TileJob, plan: TilePlan, batch_size: int, in_flight: int
) -> Generator[list[TileResult], None, None]:
    """Predict a plan on a dask cluster, yielding each batch's results in plan order.

    At most ``in_flight`` batches are submitted ahead of the one being consumed, so the
    driver's memory stays bounded whatever the scene size. The consumer handles each batch
    holding :data:`GDAL_LOCK` (it writes the output then), so worker threads of this
    process read between its writes, never during them.

    Args:
        client: A dask.distributed client.
        job: The scene, model and settings.
        plan: The tile plan of the working grid.
        batch_size: Tiles per task.
        in_flight: Batches submitted ahead.

    Yields:
        The results of each batch, in plan order.
    """
    batches = plan_batches(plan, batch_size)
    queue: deque[Any] = deque()
    next_batch = 0
    while next_batch < len(batches) or queue:
        while next_batch < len(batches) and len(queue) < max(in_flight, 1):
            queue.append(client.submit(run_batch, job, batches[next_batch], pure=False))
            next_batch += 1
        future = queue.popleft()
        results = future.result()
        future.release()
        with GDAL_LOCK:
            yield results


@contextmanager
def dask_client(workers: int = 1, scheduler: str | None = None) -> Iterator[Client]:
    """Connect to a dask cluster, or start a local one of ``workers`` processes.

    Args:
        workers: Worker processes of a local cluster (one thread each).
        scheduler: Address of an existing scheduler; overrides ``workers``.

    Yields:
        A connected client; a local cluster is shut down on exit.

    Raises:
        InputError: If the scheduler cannot be reached.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        check_scheduler(scheduler)
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise InputError(
                f"cannot reach the dask scheduler at {scheduler}; check the address "
                "(tcp://host:8786) and that the scheduler is running"
            ) from exc
        with client:
            yield client
        return
    threads = max(1, torch.get_num_threads() // max(workers, 1))
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env={"OMP_NUM_THREADS": str(threads)},
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@contextmanager
def _dask_batches(
    ckpt: Checkpoint,
    scene: str,
    src: Reader,
    bands: list[int],
    plan: TilePlan,
    resampled: bool,
    card: ModelCard,
    opts: PredictOptions,
    batch: int,
    compiled: bool = False,
) -> Iterator[Iterator[list[TileResult]]]:
    """Run the plan's tiles on a dask cluster, ``batch`` tiles a task.

    With ``compiled``, each worker runs its network through ``torch.compile``
    (:mod:`geounet.model.compiled`).
    """
    if ckpt.source is None:
        raise InputError("dask workers load the model from a file: pass --model PATH")
    px_m = ground_pixel_size_m(src)
    job = TileJob(
        scene=str(Path(scene).resolve()) if is_local(scene) else scene,
        factor=card.pixel_size_m / px_m if resampled else 1.0,
        bands=tuple(bands),
        model=str(Path(ckpt.source).resolve()),
        device=opts.device,
        precision=opts.precision,
        value_range=opts.value_range,
        tta=opts.tta,
        compiled=compiled,
    )
    with dask_client(opts.workers, opts.scheduler) as client:
        n = max(len(client.scheduler_info().get("workers", {})), 1)
        with closing(dask_tile_batches(client, job, plan, batch, in_flight=2 * n + 1)) as batches:
            yield batches
