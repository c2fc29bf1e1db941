"""Registry token auth (WWW-Authenticate Bearer, credentials from ~/.docker/config.json
and its credential helpers)
against a small stand-in registry served by aiohttp on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from banger.core.errors import ChecksumMismatch, RegistryError
from banger.core.oci import Descriptor, parse_reference
from banger.host.oci import BlobCache, RegistryClient
from banger.host.processes import Result, SubprocessRunner
from tests.support.host_fakes import FakeRunner

SEEN = web.AppKey("seen", list[str])
_servers: list[TestServer] = []


async def serve(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    _servers.append(server)
    return server


@pytest.fixture(autouse=True)
async def _close_servers() -> AsyncIterator[None]:
    yield
    while _servers:
        await _servers.pop().close()


BLOB = b"layer bytes"
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


def auth_app(expected_basic: str | None) -> web.Application:
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": BLOB_DIGEST, "size": len(BLOB)}],
    }).encode()
    app = web.Application()
    seen: list[str] = []
    app[SEEN] = seen

    async def token(request: web.Request) -> web.Response:
        seen.append(request.query_string)
        if expected_basic and request.headers.get("Authorization") != expected_basic:
            return web.Response(status=401)
        return web.json_response({"token": "T0KEN"})

    def challenge(request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") == "Bearer T0KEN":
            return None
        realm = f"http://{request.host}/token"
        return web.Response(status=401, headers={
            "WWW-Authenticate": f'Bearer realm="{realm}",service="test",'
                                f'scope="repository:priv/img:pull"'})

    async def manifests(request: web.Request) -> web.Response:
        return challenge(request) or web.Response(
            body=manifest, content_type="application/vnd.oci.image.manifest.v1+json")

    async def blobs(request: web.Request) -> web.Response:
        return challenge(request) or web.Response(body=BLOB)

    app.router.add_get("/token", token)
    app.router.add_get("/v2/priv/img/manifests/{ref}", manifests)
    app.router.add_get("/v2/priv/img/blobs/{digest}", blobs)
    return app


async def test_bearer_token_with_docker_config_credentials(tmp_path: Path) -> None:
    basic = "Basic " + base64.b64encode(b"alice:pw").decode()
    server = await serve(auth_app(basic))
    address = f"127.0.0.1:{server.port}"
    creds = {"auths": {address: {"auth": base64.b64encode(b"alice:pw").decode()}}}
    ref = parse_reference(f"{address}/priv/img:1")
    async with RegistryClient(BlobCache(tmp_path), credentials=creds) as client:
        resolved = await client.resolve(ref)
        path = await client.fetch_blob(ref, resolved.manifest.layers[0])
    assert path.read_bytes() == BLOB
    assert "scope=repository" in server.app[SEEN][0]
    # Without credentials the token service says no: a clear error, not a traceback.
    async with RegistryClient(BlobCache(tmp_path / "2")) as client:
        with pytest.raises(RegistryError, match="refused a token"):
            await client.resolve(ref)


async def test_anonymous_token(tmp_path: Path) -> None:
    server = await serve(auth_app(None))
    ref = parse_reference(f"127.0.0.1:{server.port}/priv/img:1")
    async with RegistryClient(BlobCache(tmp_path)) as client:
        resolved = await client.resolve(ref)
        layer = resolved.manifest.layers[0]
        wrong = Descriptor(layer.media_type, "sha256:" + "0" * 64, layer.size)
        with pytest.raises(ChecksumMismatch):
            await client.fetch_blob(ref, wrong)


def helper_config(address: str, *, per_registry: bool) -> dict[str, object]:
    stale = {"auths": {address: {"auth": base64.b64encode(b"alice:wrong").decode()}}}
    if per_registry:
        return {**stale, "credHelpers": {address: "test"}}
    return {**stale, "credsStore": "test"}


@pytest.mark.parametrize("per_registry", [True, False])
async def test_credential_helper_is_asked_through_the_runner(
    tmp_path: Path, per_registry: bool
) -> None:
    server = await serve(auth_app("Basic " + base64.b64encode(b"alice:pw").decode()))
    address = f"127.0.0.1:{server.port}"
    answer = json.dumps({"ServerURL": address, "Username": "alice", "Secret": "pw"})
    runner = FakeRunner(responses={("docker-credential-test",): Result((), 0, answer, "")})
    ref = parse_reference(f"{address}/priv/img:1")
    async with RegistryClient(BlobCache(tmp_path), runner=runner,
                              credentials=helper_config(address, per_registry=per_registry)
                              ) as client:
        await client.resolve(ref)
        await client.fetch_blob(ref, (await client.resolve(ref)).manifest.layers[0])
    assert runner.calls == [("docker-credential-test", "get")]  # asked once per registry
    assert runner.inputs == [f"{address}\n".encode()]


async def test_helper_without_an_entry_falls_back_to_auths(tmp_path: Path) -> None:
    server = await serve(auth_app("Basic " + base64.b64encode(b"alice:pw").decode()))
    address = f"127.0.0.1:{server.port}"
    runner = FakeRunner(responses={("docker-credential-test",): Result(
        (), 1, "credentials not found in native keychain\n", "")})
    config = {"credsStore": "test",
              "auths": {address: {"auth": base64.b64encode(b"alice:pw").decode()}}}
    async with RegistryClient(BlobCache(tmp_path), runner=runner, credentials=config) as client:
        await client.resolve(parse_reference(f"{address}/priv/img:1"))


async def test_failing_or_missing_helper_is_a_clear_error(tmp_path: Path) -> None:
    server = await serve(auth_app("Basic " + base64.b64encode(b"alice:pw").decode()))
    address = f"127.0.0.1:{server.port}"
    ref = parse_reference(f"{address}/priv/img:1")
    failing = FakeRunner(fail_on={("docker-credential-test",)})
    async with RegistryClient(BlobCache(tmp_path), runner=failing,
                              credentials={"credsStore": "test"}) as client:
        with pytest.raises(RegistryError, match="docker-credential-test failed"):
            await client.resolve(ref)
    async with RegistryClient(BlobCache(tmp_path), runner=SubprocessRunner(),
                              credentials={"credsStore": "banger-no-such-helper"}) as client:
        with pytest.raises(RegistryError, match=r"docker-credential-banger-no-such-helper.*"
                           r"not on PATH"):
            await client.resolve(ref)
