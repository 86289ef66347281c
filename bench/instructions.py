"""The pure core over a workload's events, once, for counting its instructions: a measure of a
change to the hot path that the noise of a shared machine does not move (CPU time on two CPUs
shared with the broker and other work varies by half from one run to the next).

Run under callgrind twice, with two event counts, and take the difference: what starting
Python, importing and building the events cost cancels out, and what is left is the
instructions of the extra events. For example, instructions an event of the every-event-runs
workload::

    for n in 200 1200; do PYTHONHASHSEED=0 valgrind --tool=callgrind \\
      --callgrind-out-file=/dev/null .venv/bin/python -m bench.instructions every-event-runs $n \\
      2>&1 | grep Collected; done    # (second - first) / 1000

``PYTHONHASHSEED=0`` keeps the dicts' layout, and so the count, the same from run to run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bench.workload import (
    CreatedLeads,
    EventSource,
    core_outcomes,
    every_event_workflows,
    index_of,
    workflows,
)
from coeflow.collector import as_in_a_worker
from coeflow.settings import Settings

EVENTS = 3000
"""Events made whatever the count asked for, so that making them costs the same in both runs."""
WARM = 200
"""Events decided first, so that both runs have filled the caches (templates, partitions)."""


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("mixed", "every-event-runs") or not argv[1].isdigit():
        print("usage: python -m bench.instructions mixed|every-event-runs EVENTS", file=sys.stderr)
        return 2
    workload, count = argv[0], min(int(argv[1]), EVENTS)
    if workload == "mixed":
        index = index_of(workflows(10_000, 1_000))
        events = list(EventSource(1_000).events(EVENTS))
    else:
        index = index_of(every_event_workflows(1_000))
        events = list(CreatedLeads(1_000).events(EVENTS))
    settings = Settings(_env_file=None, kafka_bootstrap="instructions:0")
    with as_in_a_worker():  # what it holds frozen, as a worker once its definitions are in
        for _ in core_outcomes(events[:WARM], index, settings):
            pass
        for _ in core_outcomes(events[:count], index, settings):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
