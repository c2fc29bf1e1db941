"""A hostile or awkward registry, served by aiohttp on 127.0.0.1: a manifest sent in pieces,
a token realm over plain http, a manifest that declares more than the size limit
(Containment: hostile registries)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from banger.core.errors import ImageTooLarge, RegistryError
from banger.core.oci import is_loopback, may_send_credentials, parse_reference
from banger.host import oci
from banger.host.oci import BlobCache, RegistryClient
from banger.host.ocipull import OCIPuller

SEEN = web.AppKey("seen", list[str])
_servers: list[TestServer] = []


@pytest.fixture(autouse=True)
async def _close_servers() -> AsyncIterator[None]:
    yield
    while _servers:
        await _servers.pop().close()


async def serve(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    _servers.append(server)
    return server


def manifest_bytes(layer_size: int) -> bytes:
    config = b"{}"
    return json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + "1" * 64, "size": layer_size}],
        "annotations": {"padding": "p" * 200_000},
    }).encode()


def registry_app(manifest: bytes, *, realm: str | None = None) -> web.Application:
    app = web.Application()
    seen: list[str] = []
    app[SEEN] = seen

    async def manifests(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        if realm is not None and request.headers.get("Authorization") != "Bearer T":
            return web.Response(status=401, headers={
                "WWW-Authenticate": f'Bearer realm="{realm}",service="s"'})
        response = web.StreamResponse(headers={
            "Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        response.content_length = len(manifest)
        await response.prepare(request)
        half = len(manifest) // 2
        await response.write(manifest[:half])
        await asyncio.sleep(0.2)  # the second half arrives later, as from a slow proxy
        await response.write(manifest[half:])
        await response.write_eof()
        return response

    async def token(request: web.Request) -> web.Response:
        seen.append(f"token {request.headers.get('Authorization', '')}")
        return web.json_response({"token": "T"})

    async def blobs(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(status=404)

    app.router.add_get("/v2/img/manifests/{ref}", manifests)
    app.router.add_get("/v2/img/blobs/{digest}", blobs)
    app.router.add_get("/token", token)
    return app


async def test_a_manifest_sent_in_two_writes_is_read_whole(tmp_path: Path) -> None:
    server = await serve(registry_app(manifest_bytes(10)))
    ref = parse_reference(f"127.0.0.1:{server.port}/img:1")
    async with RegistryClient(BlobCache(tmp_path)) as client:
        resolved = await client.resolve(ref)
    assert resolved.manifest.layers[0].size == 10


@pytest.mark.parametrize(("realm", "allowed"), [
    ("https://auth.example.invalid/token", True),
    ("http://auth.example.invalid/token", False),
    ("HTTP://auth.example.invalid/token", False),
    ("http://127.0.0.1:5000/token", True),
    ("http://localhost/token", True),
    ("http://127.0.0.1.example.invalid/token", False),
    ("http://user@auth.example.invalid/token", False),
    ("http://insecure.example.invalid:5000/t", True),
    ("ftp://auth.example.invalid/token", False),
])
def test_credentials_go_only_to_https_or_trusted_http_realms(realm: str, allowed: bool) -> None:
    assert may_send_credentials(realm, ["insecure.example.invalid:5000"]) is allowed


async def test_basic_credentials_are_not_sent_to_a_plain_http_realm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The realm is on loopback (no traffic may leave this host in a test); the client is
    # told it is not trusted, as an http realm elsewhere would not be.
    server = await serve(registry_app(manifest_bytes(10),
                                      realm="http://127.0.0.1:1/token"))
    address = f"127.0.0.1:{server.port}"
    monkeypatch.setattr(oci, "may_send_credentials", lambda realm, insecure: False)
    creds = {"auths": {address: {"auth": base64.b64encode(b"alice:secret").decode()}}}
    async with RegistryClient(BlobCache(tmp_path), credentials=creds) as client:
        with pytest.raises(RegistryError, match="not https"):
            await client.resolve(parse_reference(f"{address}/img:1"))
    assert not any(line.startswith("token") for line in server.app[SEEN])


async def test_a_manifest_over_the_size_limit_is_refused_before_any_download(
    tmp_path: Path,
) -> None:
    server = await serve(registry_app(manifest_bytes(10 << 30)))
    puller = OCIPuller(tmp_path / "cache")
    with pytest.raises(ImageTooLarge, match="over the size limit"):
        await puller.pull(reference=parse_reference(f"127.0.0.1:{server.port}/img:1"),
                          dest_dir=tmp_path / "img", max_bytes=1 << 30,
                          progress=lambda event: None)
    assert not any("/blobs/" in path for path in server.app[SEEN])


@pytest.mark.parametrize(("registry", "loopback"), [
    ("127.0.0.1:5000", True), ("127.1.2.3", True), ("localhost:5000", True),
    ("[::1]:5000", True), ("127.0.0.1.example.invalid", False),
    ("127.evil.example.invalid:5000", False), ("[::2]:5000", False),
])
def test_only_real_loopback_registries_are_spoken_to_over_http(
    registry: str, loopback: bool
) -> None:
    assert is_loopback(registry) is loopback
