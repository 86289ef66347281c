"""A workflow's versions one by one, the diff between any two, and restoring one as a draft:
the Versions tab's requests (the list itself is ``GET /workflows/{id}/versions``)."""

from __future__ import annotations

from faust.web import Request, Response

from coeflow.errors import NotFound
from processor.api.views import ApiView, operation, route
from processor.api.workflows import WorkflowView, _saved
from processor.core.diff import diff
from topics.api import DiffQuery, FieldChange, PublicWorkflow, SavedWorkflow, VersionDiff
from topics.workflows import Workflow

_EVERY_VERSION_CHANGES = ("version", "updated_at")


class VersionView(ApiView):
    def saved_version(self, request: Request, workflow_id: str, version: str | int) -> Workflow:
        """One saved version (of a deleted workflow too) this token's tenant may see."""
        text = str(version)
        number = int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None
        known = self.admin.versions.versions.get(workflow_id, {})
        found = known.get(number) if number is not None else None
        if found is None or not self.principal(request).sees(found.tenant_id):
            if known and any(self.principal(request).sees(v.tenant_id) for v in known.values()):
                raise NotFound(f"workflow {workflow_id!r} has no version {text[:20]!r}")
            raise NotFound(f"no workflow {workflow_id!r}")
        return found


@route("/workflows/{workflow_id}/versions/{version}")
class OneVersion(VersionView):
    @operation("One saved version of a workflow (immutable)", response=PublicWorkflow)
    async def get(self, request: Request, workflow_id: str, version: str) -> Response:
        return self.reply(PublicWorkflow.of(self.saved_version(request, workflow_id, version)))


@route("/workflows/{workflow_id}/diff")
class Diff(VersionView):
    @operation(
        "What changed between two versions of a workflow, field by field",
        query=DiffQuery,
        response=VersionDiff,
    )
    async def get(self, request: Request, workflow_id: str) -> Response:
        asked = self.query(request, DiffQuery)
        older = self.saved_version(request, workflow_id, asked.from_version)
        newest = self.admin.versions.latest(workflow_id)
        newer = self.saved_version(request, workflow_id, asked.to_version or newest)
        documents = [
            {
                k: v
                for k, v in PublicWorkflow.of(w).model_dump(mode="json", by_alias=True).items()
                if k not in _EVERY_VERSION_CHANGES
            }
            for w in (older, newer)
        ]
        changes, truncated = diff(documents[0], documents[1])
        return self.reply(
            VersionDiff(
                workflow_id=workflow_id,
                from_version=older.version,
                to_version=newer.version,
                changes=[
                    FieldChange(path=c.path, kind=c.kind, before=c.before, after=c.after)
                    for c in changes
                ],
                truncated=truncated,
            )
        )


@route("/workflows/{workflow_id}/versions/{version}/restore")
class Restore(VersionView, WorkflowView):
    @operation(
        "Restore a saved version as a draft: a new version with its name, trigger, conditions "
        "and actions, and status `draft` (an active workflow stops running until activated)",
        scope="write",
        response=SavedWorkflow,
    )
    async def post(self, request: Request, workflow_id: str, version: str) -> Response:
        async with self.writing(workflow_id):
            current = self.workflow(request, workflow_id).workflow
            old = self.saved_version(request, workflow_id, version)
            document = old.model_dump(mode="json", by_alias=True)
            new = {
                **document,
                "status": "draft",
                "version": current.version + 1,
                "inbound_secrets": [],  # the current secrets stay (``with_secrets``)
            }
            workflow = await self.save(request, "workflow.updated", new, current)
        return self.reply(_saved(workflow, current))
