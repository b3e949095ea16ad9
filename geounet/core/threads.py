"""A thread pool that has no thread left running once its block ends, even after Ctrl-C."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

_POOLS = itertools.count()


@contextmanager
def joined_pool(workers: int, name: str) -> Iterator[ThreadPoolExecutor]:
    """A thread pool whose threads have all ended when the block exits, however it exits.

    ``ThreadPoolExecutor.shutdown(wait=True)`` joins the threads the pool has recorded.
    An interrupt (Ctrl-C, or SIGTERM raised as one by the ``geounet`` command) can land
    inside ``submit`` after it started a thread and before it recorded it: that thread
    then runs the task on with nobody waiting for it, and crashes the process once the
    dataset it reads is closed under it. The block's exit drops the tasks not started and
    joins every thread of this pool, recorded or not (found by the pool's unique name).

    Args:
        workers: Threads at most.
        name: What the threads are named after (their names end in a pool number).

    Yields:
        The pool.
    """
    prefix = f"{name}-{next(_POOLS)}"
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=prefix)
    try:
        yield pool
    finally:
        # an unrecorded worker takes the shutdown marker from the same queue and ends too
        pool.shutdown(wait=True, cancel_futures=True)
        for thread in threading.enumerate():
            if thread.name.startswith(f"{prefix}_") and thread is not threading.current_thread():
                thread.join()
