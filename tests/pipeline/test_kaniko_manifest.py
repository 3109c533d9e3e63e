"""ci/kaniko.yaml is a valid batch/v1 Job (the official client's models, not just YAML) with the settings
the CI half needs; a local kaniko run would take its args from it, rewriting only local paths."""

from __future__ import annotations

from k8s_models import round_trip

from imagepipe.builders import kanikojob
from imagepipe.paths import ROOT


def test_manifest_is_a_valid_job_with_no_unknown_fields():
    manifest = kanikojob.load()
    job, back = round_trip(manifest, "V1Job")
    assert back == manifest  # no misspelt or unknown key
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


def test_the_executor_runs_the_forks_v1_29_profile_whole():
    """The Preview profile's flags (the fork's announced v1.29 defaults), FF_KANIKO_CACHE_LOOKAHEAD and
    --cache-copy-layers, together: the cached-stage skip needs every key known in advance."""
    job = kanikojob.load()
    assert kanikojob.executor_env(job) == {f"FF_KANIKO_{name}": "true" for name in (
        "SKIP_WRITE_WHITEOUTS", "CROSS_REPO_MOUNT", "EXPAND_HEREDOC", "HASH_DIR_FRAMING",
        "INFER_CROSS_STAGE_CACHE_KEY", "PRECOMPILE_DOCKERIGNORE", "REPRODUCIBLE_PRESERVE_BASE_LAYERS",
        "RESOLVE_CACHE_KEY", "ROLLING_CACHE_KEY", "RUN_HONOR_GROUP", "RUN_VIA_TINI", "SHARED_BASE_CACHE",
        "SKIP_CACHED_STAGES", "SKIP_RELABEL_RECOMPRESS", "UNTAR_SKIP_ROOT", "CACHE_LOOKAHEAD")}
    assert "--cache-copy-layers" in kanikojob.executor_args(job)


def _settings(**kw):
    return kanikojob.ClusterSettings(name="todo-backend-kaniko-r1", labels={"run": "r1"}, git_url="http://g/t.git",
                                     commit="c" * 40, destination="r:5000/t:x", cache_repo="r:5000/t/cache",
                                     registry_secret="s", **kw)


def test_the_pip_cache_claim_is_mounted_where_the_containerfile_looks_and_nowhere_else():
    manifest = kanikojob.load()
    plain = kanikojob.job_for(manifest, _settings())
    cached = kanikojob.job_for(manifest, _settings(pip_cache="team-pip-cache"))
    round_trip(cached, "V1Job")
    pod = cached["spec"]["template"]["spec"]
    assert pod["volumes"][-1] == {"name": "pip-cache", "persistentVolumeClaim": {"claimName": "team-pip-cache"}}
    kaniko = kanikojob.kaniko_container(cached)
    assert kaniko["volumeMounts"][-1] == {"name": "pip-cache", "mountPath": kanikojob.PIP_CACHE_MOUNT}
    assert f"[ -d {kanikojob.PIP_CACHE_MOUNT} ]" in (ROOT / "build/Containerfile").read_text()
    # nothing else differs: the args, and so every layer's cache key, are the same with the cache or without
    pod["volumes"].pop()
    kaniko["volumeMounts"].pop()
    cached["spec"]["template"]["spec"]["containers"] = [
        kaniko if c["name"] == "kaniko" else c for c in pod["containers"]]
    assert cached == plain
