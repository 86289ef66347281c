"""A tenant's API tokens: create (the secret is shown once), list, revoke. Admin scope."""

from __future__ import annotations

from faust.web import Request, Response

from coeflow.errors import InvalidInput, NotFound, Problem
from processor.api.views import ApiView, operation, route
from processor.core.access import mint
from processor.core.audit import token_change
from topics.access import TokenCreated, TokenList, TokenRequest, TokenView
from topics.api import TenantQuery


@route("/tokens")
class Tokens(ApiView):
    @operation("List API tokens", scope="admin", query=TenantQuery, response=TokenList)
    async def get(self, request: Request) -> Response:
        tenant = self.tenant_scope(request, self.query(request, TenantQuery).tenant_id)
        found = sorted(
            (
                t.view()
                for t in self.admin.tokens.tokens.values()
                if tenant is None or t.tenant_id == tenant
            ),
            key=lambda t: (t.tenant_id, t.created_at, t.token_id),
        )
        return self.reply(TokenList(tokens=found))

    @operation(
        "Create an API token for one tenant and scope; the answer holds its secret, once",
        scope="admin",
        body=TokenRequest,
        response=TokenCreated,
        status=201,
    )
    async def post(self, request: Request) -> Response:
        asked = await self.body(request, TokenRequest)
        principal = self.principal(request)
        tenant = principal.tenant_id or asked.tenant_id
        if tenant is None or asked.tenant_id not in (None, tenant):
            raise InvalidInput(
                [
                    Problem(
                        "tenant_id",
                        "the operator names the tenant; a tenant's token makes tokens for "
                        "its own tenant only",
                    )
                ],
                "invalid body",
            )
        now = self.runtime.clock()
        secret, token = mint(tenant, asked.scope, asked.name, principal.actor.name, now)
        await self.publish(token_change("token.created", None, token, principal.actor, now))
        created = TokenCreated(**token.view().model_dump(), token=secret)
        return self.reply(created, 201)


@route("/tokens/{token_id}")
class OneToken(ApiView):
    @operation(
        "Revoke an API token (at once, on every worker once it has read it)",
        scope="admin",
        response=TokenView,
    )
    async def delete(self, request: Request, token_id: str) -> Response:
        principal = self.principal(request)
        # One revocation of a token at a time: one writes it (and its audit event), the others
        # find it revoked once it is read back and answer what it wrote.
        async with self.admin.writes.hold(f"token:{token_id}"):
            current = self.admin.tokens.tokens.get(token_id)
            if current is None or not principal.sees(current.tenant_id):
                raise NotFound(f"no token {token_id!r}")
            if current.revoked_at is not None:
                return self.reply(current.view())
            now = self.runtime.clock()
            revoked = current.model_copy(update={"revoked_at": now})
            await self.publish(
                token_change("token.revoked", current, revoked, principal.actor, now)
            )
        return self.reply(revoked.view())
