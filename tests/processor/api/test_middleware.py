"""The worker's web server answers what no view answers in JSON: an unknown path, a method
a path does not have (with ``Allow``), aiohttp's own errors, and unexpected exceptions."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from processor.api.middleware import json_errors, json_errors_without_api


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("a bug")


async def big(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"ok": True})


def client() -> TestClient:
    app = web.Application(middlewares=[json_errors], client_max_size=16)
    app.router.add_get("/ok", ok)
    app.router.add_put("/ok", ok)
    app.router.add_get("/boom", boom)
    app.router.add_post("/big", big)
    return TestClient(TestServer(app))


async def test_errors_are_json_with_their_status_and_headers() -> None:
    async with client() as http:
        response = await http.get("/nowhere")
        assert (response.status, response.content_type) == (404, "application/json")
        assert "no such endpoint" in (await response.json())["error"]

        response = await http.patch("/ok")
        assert (response.status, response.content_type) == (405, "application/json")
        assert set(response.headers["Allow"].split(",")) == {"GET", "HEAD", "PUT"}
        assert (await response.json())["error"].startswith("method PATCH is not allowed here")

        response = await http.post("/big", data=b"x" * 100)
        assert (response.status, response.content_type) == (413, "application/json")
        assert "exceeded" in (await response.json())["error"]

        response = await http.get("/boom")
        assert (response.status, response.content_type) == (500, "application/json")
        assert (await response.json()) == {
            "error": "internal error; the worker log has the details"
        }

        response = await http.get("/ok")
        assert (response.status, await response.json()) == (200, {"ok": True})


async def test_a_compressed_body_is_refused_before_anything_inflates_it() -> None:
    import time
    import zlib

    from processor.api.middleware import HANDLER_OPTIONS

    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip
    bomb = b"".join(squeeze.compress(bytes(1 << 20)) for _ in range(64)) + squeeze.flush()
    app = web.Application(middlewares=[json_errors], handler_args=HANDLER_OPTIONS)
    reached: list[int] = []

    async def reads(request: web.Request) -> web.Response:
        reached.append(len(await request.read()))
        return web.json_response({"ok": True})

    app.router.add_post("/in", reads)
    async with TestClient(TestServer(app)) as http:
        started = time.monotonic()
        response = await http.post("/in", data=bomb, headers={"Content-Encoding": "gzip"})
        took = time.monotonic() - started
        assert response.status == 415 and "compressed" in (await response.json())["error"]
        assert reached == [] and took < 1.0, f"{len(bomb)} bytes of gzip took {took:.2f}s"
        response = await http.post("/in", data=b"{}")
        assert response.status == 200 and reached == [2]


async def test_a_worker_without_the_api_role_says_so_in_its_404() -> None:
    app = web.Application(middlewares=[json_errors_without_api])
    app.router.add_get("/health", ok)
    async with TestClient(TestServer(app)) as http:
        assert (await http.get("/health")).status == 200
        for path in ("/api/v1/workflows", "/", "/workflows"):
            response = await http.get(path)
            assert (response.status, response.content_type) == (404, "application/json")
            error = (await response.json())["error"]
            assert "api role" in error and "/api/v1" not in error, path
