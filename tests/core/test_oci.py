from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from banger.core.errors import InvalidInput, RegistryError, UnsafeLayer
from banger.core.oci import (
    DOCKER_LIST,
    EntryKind,
    Reference,
    api_host,
    classify,
    credential_helper,
    docker_credentials,
    entry_mode,
    image_name_for,
    is_index,
    is_loopback,
    normalize_path,
    parse_challenge,
    parse_helper_output,
    parse_manifest,
    parse_reference,
    resolve_parents,
    select_platform,
    token_query,
)

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64


@pytest.mark.parametrize(("text", "expected"), [
    ("debian", Reference("docker.io", "library/debian", "latest")),
    ("debian:bookworm", Reference("docker.io", "library/debian", "bookworm")),
    ("docker.io/library/debian:bookworm", Reference("docker.io", "library/debian", "bookworm")),
    ("index.docker.io/foo/bar", Reference("docker.io", "foo/bar", "latest")),
    ("user/app:1.0", Reference("docker.io", "user/app", "1.0")),
    ("ghcr.io/o/r/sub:v1", Reference("ghcr.io", "o/r/sub", "v1")),
    ("127.0.0.1:5000/test/img", Reference("127.0.0.1:5000", "test/img", "latest")),
    ("localhost/img:2", Reference("localhost", "img", "2")),
    (f"debian@{D1}", Reference("docker.io", "library/debian", None, D1)),
    (f"quay.io/a/b:t@{D1}", Reference("quay.io", "a/b", "t", D1)),
])
def test_parse_reference(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize("text", [
    "", "UPPER/case", "a b", "debian@sha256:123", "debian:-bad", "reg.io/", "x//y",
    "debian@md5:" + "a" * 32,
])
def test_parse_reference_rejects(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_reference(text)


def test_reference_strings_and_hosts() -> None:
    ref = parse_reference("debian:bookworm")
    assert str(ref) == "docker.io/library/debian:bookworm"
    assert ref.reference == "bookworm"
    assert api_host("docker.io") != "docker.io"
    assert api_host("127.0.0.1:5000") == "127.0.0.1:5000"
    assert is_loopback("127.0.0.1:5000") and is_loopback("localhost")
    assert not is_loopback("ghcr.io")
    assert parse_reference(f"debian@{D1}").reference == D1


def test_image_names() -> None:
    assert image_name_for(parse_reference("debian:bookworm")) == "debian-bookworm"
    assert image_name_for(parse_reference("ghcr.io/o/my_app")) == "my-app"
    assert image_name_for(parse_reference("alpine")) == "alpine"
    assert image_name_for(parse_reference(f"alpine@{D1}")) == "alpine-aaaaaaaaaaaa"
    assert image_name_for(parse_reference("x/y:1.2_rc")) == "y-1-2-rc"


@given(st.text(min_size=1, max_size=80))
def test_reference_parsing_never_crashes(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidInput:
        return
    assert parse_reference(str(ref)) == ref
    name = image_name_for(ref)
    assert 1 <= len(name) <= 63


INDEX = {
    "schemaVersion": 2,
    "mediaType": DOCKER_LIST,
    "manifests": [
        {"digest": D1, "size": 10, "mediaType": "x", "platform": {"os": "linux",
                                                                 "architecture": "arm64"}},
        {"digest": D2, "size": 11, "mediaType": "x", "platform": {"os": "linux",
                                                                 "architecture": "amd64"}},
    ],
}


def test_select_platform() -> None:
    assert is_index(INDEX)
    assert select_platform(INDEX).digest == D2
    with pytest.raises(RegistryError) as err:
        select_platform({"manifests": INDEX["manifests"][:1]})  # type: ignore[index]
    assert "linux/arm64" in (err.value.hint or "")


def test_index_detection_by_content_type_or_shape() -> None:
    assert is_index({"manifests": []})
    assert not is_index({"layers": []}, "application/vnd.oci.image.manifest.v1+json")
    assert is_index({}, "application/vnd.oci.image.index.v1+json; charset=utf-8")


def test_parse_manifest() -> None:
    manifest = parse_manifest({
        "schemaVersion": 2,
        "config": {"digest": D1, "size": 5, "mediaType": "c"},
        "layers": [
            {"digest": D2, "size": 7, "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd"},
            {"digest": D1, "size": 3,
             "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"},
        ],
    })
    assert [layer.compression for layer in manifest.layers] == ["zstd", "gzip"]
    assert manifest.total_size == 10


@pytest.mark.parametrize("body", [
    {"schemaVersion": 1},
    {"schemaVersion": 2, "config": {"digest": D1, "size": 1}},
    {"schemaVersion": 2, "config": {"digest": "sha256:../../x", "size": 1}, "layers": []},
    {"schemaVersion": 2, "config": {"digest": D1, "size": 1},
     "layers": [{"digest": D1, "size": 1, "mediaType": "application/x-weird"}]},
    {"schemaVersion": 2, "config": {"digest": D1, "size": -1}, "layers": []},
])
def test_parse_manifest_rejects(body: dict[str, object]) -> None:
    with pytest.raises(RegistryError):
        parse_manifest(body)


def test_challenge_and_token_query() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example.test/token",service="reg.example.test",'
        'scope="repository:library/debian:pull"'
    )
    assert challenge.scheme == "bearer"
    realm, query = token_query(challenge, "library/debian")
    assert realm == "https://auth.example.test/token"
    assert query == {"scope": "repository:library/debian:pull", "service": "reg.example.test"}
    bare = parse_challenge('Bearer realm="http://127.0.0.1:1/t"')
    assert token_query(bare, "a/b")[1] == {"scope": "repository:a/b:pull"}
    assert parse_challenge('Basic realm="x"').scheme == "basic"
    with pytest.raises(RegistryError):
        token_query(parse_challenge('Bearer realm="file:///etc/passwd"'), "a")


def test_docker_credentials() -> None:
    encoded = base64.b64encode(b"alice:s3:cret").decode()
    config = {"auths": {
        "https://index.docker.io/v1/": {"auth": encoded},
        "127.0.0.1:5000": {"auth": base64.b64encode(b"bob:pw").decode()},
        "https://ghcr.io": {"username": "carol", "password": "x"},
        "broken.test": {"auth": "!!!"},
    }}
    assert docker_credentials(config, "docker.io") == ("alice", "s3:cret")
    assert docker_credentials(config, "127.0.0.1:5000") == ("bob", "pw")
    assert docker_credentials(config, "ghcr.io") == ("carol", "x")
    assert docker_credentials(config, "broken.test") is None
    assert docker_credentials(config, "quay.io") is None
    assert docker_credentials({}, "docker.io") is None


def test_credential_helper_choice() -> None:
    config = {"credsStore": "desktop", "credHelpers": {
        "gcr.io": "gcloud", "https://123.dkr.ecr.example.test": "ecr-login",
    }}
    assert credential_helper(config, "gcr.io") == ("gcloud", "gcr.io")
    assert credential_helper(config, "123.dkr.ecr.example.test") == (
        "ecr-login", "123.dkr.ecr.example.test")
    assert credential_helper(config, "quay.io") == ("desktop", "quay.io")
    # Docker Hub is asked for under the key `docker login` uses.
    assert credential_helper(config, "docker.io") == ("desktop", "https://index.docker.io/v1/")
    assert credential_helper({"credHelpers": {"gcr.io": "gcloud"}}, "quay.io") is None
    assert credential_helper({}, "docker.io") is None
    with pytest.raises(RegistryError, match="not valid"):
        credential_helper({"credsStore": "../../bin/sh"}, "quay.io")


def test_parse_helper_output() -> None:
    out = '{"ServerURL": "gcr.io", "Username": "oauth2accesstoken", "Secret": "t0k"}'
    assert parse_helper_output("gcloud", out) == ("oauth2accesstoken", "t0k")
    for bad in ("", "not json", '{"Username": "x"}', "[]"):
        with pytest.raises(RegistryError, match="docker-credential-gcloud"):
            parse_helper_output("gcloud", bad)


@pytest.mark.parametrize(("name", "parts"), [
    ("./etc/passwd", ("etc", "passwd")),
    ("usr//bin/", ("usr", "bin")),
    ("./", ()),
])
def test_normalize_path(name: str, parts: tuple[str, ...]) -> None:
    assert normalize_path(name) == parts


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../b", "a/..", "a\0b"])
def test_normalize_path_refuses_escapes(name: str) -> None:
    with pytest.raises(UnsafeLayer):
        normalize_path(name)


def test_classify() -> None:
    assert classify(("a", ".wh.b")) == (EntryKind.WHITEOUT, ("a", "b"))
    assert classify(("a", ".wh..wh..opq")) == (EntryKind.OPAQUE, ("a",))
    assert classify((".wh..wh..opq",)) == (EntryKind.OPAQUE, ())
    assert classify(("a", ".wh..wh.plnk")) == (EntryKind.IGNORED, ("a", ".wh..wh.plnk"))
    assert classify(("a", "b")) == (EntryKind.NORMAL, ("a", "b"))
    assert classify(()) == (EntryKind.IGNORED, ())
    with pytest.raises(UnsafeLayer):
        classify(("a", ".wh."))


def _fs(links: dict[tuple[str, ...], str]):  # type: ignore[no-untyped-def]
    return lambda parts: links.get(parts)


def test_resolve_parents_follows_links_inside_the_root() -> None:
    links = {("lib",): "usr/lib", ("evil",): "/../../../etc", ("up",): "../../.."}
    assert resolve_parents(("lib", "x.so"), _fs(links)) == ("usr", "lib", "x.so")
    assert resolve_parents(("evil", "passwd"), _fs(links)) == ("etc", "passwd")
    assert resolve_parents(("up", "a", "b"), _fs(links)) == ("a", "b")
    # The last component is never followed: the entry replaces the link.
    assert resolve_parents(("lib",), _fs(links)) == ("lib",)


def test_resolve_parents_refuses_loops() -> None:
    links = {("a",): "b", ("b",): "a"}
    with pytest.raises(UnsafeLayer):
        resolve_parents(("a", "x"), _fs(links))


NAMES = st.sampled_from(["a", "b", "c", "..", ".", "etc"])
TARGETS = st.lists(NAMES, min_size=0, max_size=5).map("/".join)


@given(
    st.dictionaries(st.lists(NAMES.filter(lambda n: n not in ("..", ".")), min_size=1,
                             max_size=3).map(tuple),
                    st.tuples(st.booleans(), TARGETS).map(lambda t: ("/" if t[0] else "")
                                                          + t[1]), max_size=6),
    st.lists(NAMES.filter(lambda n: n not in ("..", ".")), min_size=1, max_size=6).map(tuple),
)
def test_resolve_parents_never_leaves_the_root(
    links: dict[tuple[str, ...], str], parts: tuple[str, ...]
) -> None:
    try:
        resolved = resolve_parents(parts, _fs(links))
    except UnsafeLayer:
        return  # a symlink loop
    assert resolved[-1] == parts[-1]
    assert all(p not in ("", ".", "..") for p in resolved)


def test_entry_mode_keeps_special_bits() -> None:
    assert entry_mode(0o104755) == 0o4755
    assert entry_mode(0o42775) == 0o2775
