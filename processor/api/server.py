"""The admin API's views (the api role) and the worker's ``/health`` (every worker), registered
with the Faust app."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, cast

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


_FAUST_INDEX = "faust.web.apps.production_index:blueprint"
"""Faust's placeholder at ``/`` (``{"status": "OK"}``)."""


def register_without_api(app: faust.App) -> None:
    """A worker without the api role answers ``/health`` and nothing else: not even Faust's
    placeholder at ``/``, which would look like the web app's address (every other path gets
    the JSON 404 of ``json_errors_without_api``)."""
    blueprints = cast(Any, app.web.blueprints)
    blueprints._enabled = [(p, bp) for p, bp in blueprints._enabled if bp != _FAUST_INDEX]


def register_health(app: faust.App, runtime: Runtime, parts: Parts) -> None:
    """``GET /health`` (no token): readiness and what this worker holds and has done, for
    whichever roles it runs."""

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            roles = runtime.settings.roles
            body: dict[str, Any] = {"roles": sorted(roles)}
            ready = True
            if "processor" in roles or "api" in roles:  # the roles that read the workflows
                ready = runtime.replica.ready.is_set()
                body |= {
                    "workflows": len(runtime.catalog),
                    "active_workflows": len(runtime.catalog.index),
                    # A count only: no token is needed here, and ids name tenants (the log
                    # has each one with its reason).
                    "rejected_workflows": len(runtime.catalog.rejected),
                }
            if runtime.admin is not None:  # the api role
                ready = ready and runtime.admin.ready()
            if parts.changes is not None:  # the processor role
                changes = parts.changes
                body |= {
                    "record_change_partitions": changes.partitions,
                    # Paused because their records cannot be decoded: topic, partition, offset.
                    "held_partitions": [asdict(h) for h in changes.held.values()],
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
