"""The admin API's views and the worker's ``/health``, registered with the Faust app."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import faust
from faust.web import Request, Response, View

from processor.api.openapi import OpenApi  # noqa: F401  (imports every view into ROUTES)
from processor.api.views import ROUTES
from processor.parts import Parts
from processor.runtime import Runtime
from topics import codec


def register(app: faust.App) -> None:
    for path, view in ROUTES:
        app.page(path)(view)


def register_health(app: faust.App, runtime: Runtime, parts: Parts) -> None:
    """``GET /health`` (no token): readiness and what this worker holds and has done, for
    whichever roles it runs."""

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            roles = runtime.settings.roles
            body: dict[str, Any] = {"roles": sorted(roles)}
            ready = True
            if "processor" in roles:
                admin = runtime.admin
                ready = runtime.replica.ready.is_set() and (admin is None or admin.ready())
                body |= {
                    "workflows": len(runtime.catalog),
                    "active_workflows": len(runtime.catalog.index),
                    # A count only: no token is needed here, and ids name tenants (the log
                    # has each one with its reason).
                    "rejected_workflows": len(runtime.catalog.rejected),
                    "record_change_partitions": (
                        parts.changes.partitions if parts.changes is not None else []
                    ),
                    # Paused because their records cannot be decoded: topic, partition, offset.
                    "held_partitions": (
                        [asdict(h) for h in parts.changes.held.values()]
                        if parts.changes is not None
                        else []
                    ),
                    "processed": runtime.stats.summary(),
                }
            if parts.executors is not None:
                executors = parts.executors
                ready = ready and executors.synced.is_set()
                body["executors"] = {
                    "synced": executors.synced.is_set(),
                    "in_flight": executors.runner.in_flight,
                    "known_actions": len(executors.ledger),
                    **asdict(executors.runner.stats),
                }
            body["ready"] = ready
            return self.bytes(
                codec.dumps(body), content_type="application/json", status=200 if ready else 503
            )
