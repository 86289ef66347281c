"""The cyclic garbage collector as a worker runs it, for the worker and for what measures it.

A worker raises the collector's thresholds (deciding a change allocates dozens of short-lived
containers, and with Python's defaults a young collection ran every few changes) and freezes
what it loaded once its definitions are in (a full collection would otherwise walk every
compiled workflow again). The bench and the instruction counts measure the core the same way,
not with their own data (events, expected runs, samples) walked by each full collection.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

WORKER_THRESHOLDS = (20_000, 20, 20)
"""The thresholds of a worker's collector (Python's are 700, 10, 10): fewer, larger young
collections free the same cycles a little later."""


def tune_for_a_worker() -> None:
    gc.set_threshold(*WORKER_THRESHOLDS)


@contextmanager
def as_in_a_worker() -> Iterator[None]:
    """The collector as a worker's while the block runs: what the process holds frozen, the
    worker's thresholds; both undone after. For a process that has frozen nothing else:
    unfreezing gives back everything frozen."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*WORKER_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
