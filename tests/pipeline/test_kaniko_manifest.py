"""ci/kaniko.yaml is a valid batch/v1 Job (the official client's models, not just YAML) with the settings
the CI half needs; a local kaniko run would take its args from it, rewriting only local paths."""

from __future__ import annotations

import json

from kubernetes.client import ApiClient

from imagepipe.builders import kanikojob


class _Response:
    def __init__(self, data: dict) -> None:
        self.data = json.dumps(data)


def _prune(value):
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def test_manifest_is_a_valid_job_with_no_unknown_fields():
    manifest = kanikojob.load()
    api = ApiClient()
    job = api.deserialize(_Response(manifest), "V1Job")  # required fields are enforced by the models
    # A misspelt or unknown key is dropped by the models: the round trip must give the file back.
    assert _prune(api.sanitize_for_serialization(job)) == manifest
    spec = job.spec
    assert spec.backoff_limit is not None and spec.active_deadline_seconds and spec.ttl_seconds_after_finished
    pod = spec.template.spec
    assert pod.restart_policy == "Never" and pod.automount_service_account_token is False
    kaniko = next(c for c in pod.containers if c.name == "kaniko")
    assert kaniko.image.startswith("ghcr.io/osscontainertools/kaniko:v")  # the maintained fork, pinned
    assert kaniko.resources.requests and kaniko.resources.limits
    assert kaniko.security_context.allow_privilege_escalation is False
    assert "ALL" in kaniko.security_context.capabilities.drop
    secret_mount = next(m for m in kaniko.volume_mounts if m.mount_path == "/kaniko/.docker")
    secret = next(v for v in pod.volumes if v.name == secret_mount.name).secret
    assert secret.items[0].path == "config.json"


def test_executor_args_cover_the_contract():
    args = kanikojob.executor_args(kanikojob.load())
    keys = {a.split("=", 1)[0] for a in args}
    assert {"--context", "--dockerfile", "--destination", "--digest-file", "--cache", "--cache-repo",
            "--snapshot-mode"} <= keys
    assert "--dockerfile=/workspace/repo/build/Containerfile" in args
    assert "--context=dir:///workspace/repo/backend" in args
    assert "--digest-file=/dev/termination-log" in args
    assert not any("password" in a.lower() or "token" in a.lower() for a in args), "no secrets in the file"


def test_local_args_rewrite_only_paths_and_destination():
    job = kanikojob.load()
    local = kanikojob.local_args(job, context="/ctx", dockerfile="/ctx/Containerfile",
                                 destination="127.0.0.1:5000/todo-backend:x", cache_repo="127.0.0.1:5000/cache")
    original = kanikojob.executor_args(job)
    assert len(local) == len(original)
    changed = {a.split("=", 1)[0] for a, b in zip(original, local, strict=True) if a != b}
    assert changed == {"--context", "--dockerfile", "--destination", "--cache-repo"}
    assert "--context=dir:///ctx" in local
