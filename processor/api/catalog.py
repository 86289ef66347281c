"""The catalog: every trigger kind, operator and action type with the JSON Schema of its
parameters, as ``processor.core.vocabulary`` reads them from the registries (the builder's
forms are generated from it; nothing lists a parameter a second time)."""

from __future__ import annotations

import functools

from faust.web import Request, Response

from processor.api.views import ApiView, operation, route
from processor.core.vocabulary import vocabulary
from topics.api import Catalog


@functools.cache
def catalog() -> Catalog:
    """Built once: the registries do not change while a worker runs."""
    return Catalog.model_validate(vocabulary())


@route("/catalog")
class CatalogView(ApiView):
    @operation(
        "Every trigger kind, condition operator and action type, with the JSON Schema of "
        "its parameters",
        response=Catalog,
    )
    async def get(self, request: Request) -> Response:
        return self.reply(catalog())
