"""ImageRef against the distribution reference grammar, table-tested (the cases follow
distribution/reference's own tests where they apply)."""

from __future__ import annotations

import pytest

from imagepipe.image.refs import (
    BuildFacts,
    ImageRef,
    InvalidReference,
    PushedImage,
    is_registry,
    is_repository,
    is_tag,
)

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest"), [
    ("todo-backend", None, "todo-backend", None, None),
    ("library/python:3.11-slim", None, "library/python", "3.11-slim", None),
    ("docker.io/library/python:3.11-slim", "docker.io", "library/python", "3.11-slim", None),
    ("127.0.0.1:5000/todo-backend:abc123", "127.0.0.1:5000", "todo-backend", "abc123", None),
    (f"127.0.0.1:5000/todo-backend@{D}", "127.0.0.1:5000", "todo-backend", None, D),
    (f"127.0.0.1:5000/todo-backend:t@{D}", "127.0.0.1:5000", "todo-backend", "t", D),
    ("localhost/todo-backend:1", "localhost", "todo-backend", "1", None),
    ("localhost:5000/a/b/c", "localhost:5000", "a/b/c", None, None),
    ("[::1]:5000/x:y", "[::1]:5000", "x", "y", None),
    ("ghcr.io/osscontainertools/kaniko:v1.28.3", "ghcr.io", "osscontainertools/kaniko", "v1.28.3", None),
    ("a__b/c--d.e_f", None, "a__b/c--d.e_f", None, None),
    ("Registry/repo", "Registry", "repo", None, None),  # an uppercase first component can only be a host
])
def test_parse(text, registry, repository, tag, digest):
    ref = ImageRef.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert str(ref) == text


@pytest.mark.parametrize("text", [
    "", "Todo-Backend", "repo:", "repo@sha256:abc", "-repo", "repo-", "a/-b", "repo:-tag", "repo:" + "t" * 129,
    "host:5000/Repo", "a" * 256, "repo@sha256:" + "g" * 64, "a///b", "127.0.0.1:5000/", " repo",
])
def test_invalid(text):
    with pytest.raises(InvalidReference, match="invalid image reference"):
        ImageRef.parse(text)


def test_with_tag_and_digest():
    ref = ImageRef.parse("127.0.0.1:5000/todo-backend:abc")
    assert str(ref.with_digest(D)) == f"127.0.0.1:5000/todo-backend@{D}"
    assert str(ref.with_digest(D).with_tag("latest")) == "127.0.0.1:5000/todo-backend:latest"
    assert ref.name == "127.0.0.1:5000/todo-backend"


def test_pushed_image_needs_registry_and_digest():
    pushed = PushedImage(ImageRef.parse(f"127.0.0.1:5000/todo-backend@{D}"), "abc", BuildFacts("buildah"))
    assert (pushed.digest, pushed.registry, str(pushed)) == (D, "127.0.0.1:5000", f"127.0.0.1:5000/todo-backend@{D}")
    for text in ("127.0.0.1:5000/todo-backend:abc", f"todo-backend@{D}"):
        with pytest.raises(InvalidReference, match="not a pushed image"):
            PushedImage(ImageRef.parse(text))


@pytest.mark.parametrize(("check", "text", "ok"), [
    (is_repository, "todo-backend", True), (is_repository, "team/todo_backend", True),
    (is_repository, "Bad Name", False), (is_repository, "UPPER", False), (is_repository, "a//b", False),
    (is_tag, "latest", True), (is_tag, "v1.2_3-rc", True), (is_tag, "bad:tag", False), (is_tag, ".hidden", False),
    (is_tag, "x" * 128, True), (is_tag, "x" * 129, False),
    (is_registry, "127.0.0.1:5000", True), (is_registry, "registry.example.com", True),
    (is_registry, "[::1]:5000", True),
    (is_registry, "[::1]", True), (is_registry, "host:0", False), (is_registry, "host:70000", False),
    (is_registry, "host:", False), (is_registry, "ho st", False), (is_registry, "-host", False),
])
def test_validators(check, text, ok):
    assert check(text) is ok
