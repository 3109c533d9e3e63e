"""bench's cluster rows: the local Kubernetes brought up (time to node Ready, the control plane's memory),
then ci/kaniko.yaml's Job run cold (an empty cache repository) and after a code-only commit (the registry
cache), and cold again with a --pip-cache claim, once to fill it and once served by it, each timed from
submit to digest; beside local kaniko and buildah in the same run."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from imagepipe.builders import kanikojob, kubejob
from imagepipe.cluster import binaries, images, volumes
from imagepipe.cluster.local import LocalCluster
from imagepipe.errors import PipelineError
from imagepipe.exec import cmdline, runner
from imagepipe.host import podman, quirks
from imagepipe.paths import HOST_CA_BUNDLE, ROOT
from imagepipe.ui import output

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


def rss_mb(cluster: LocalCluster, names: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for name in names:
        try:
            pid = int((cluster.pids / f"{name}.pid").read_text())
            out[name] = round(psutil.Process(pid).memory_info().rss / 1e6, 1)
        except (OSError, ValueError, psutil.Error):
            out[name] = 0.0
    return out


NAMESPACE = "imagepipe-bench"
WHOLE_CHANGE = "\n# benchmark: a code-only change for the whole job\n"


def _commit(bare: Path, change: str | None) -> str:
    """HEAD pushed to the cluster's git server; with `change`, a commit on top of it that appends it to
    app/main.py (a code-only change), made in a throw-away clone."""
    if change is None:
        commit = runner.run(cmdline.git(ROOT, "rev-parse", "HEAD"), stage="bench").stdout.strip()
        # forced: a later measurement starts again from HEAD
        runner.run(cmdline.git(ROOT, "push", "-q", str(bare), f"+{commit}:refs/heads/bench"), stage="bench")
        return commit
    with tempfile.TemporaryDirectory(prefix="imagepipe-bench-git-") as tmp:
        runner.run(["git", "clone", "-q", str(bare), tmp, "-b", "bench"], stage="bench")
        main = Path(tmp) / "backend/app/main.py"
        main.write_text(main.read_text() + change)
        ident = ("-c", "user.name=bench", "-c", "user.email=bench@example.invalid")
        runner.run(cmdline.git(Path(tmp), *ident, "commit", "-qam", "bench: a code-only change"), stage="bench")
        runner.run(cmdline.git(Path(tmp), "push", "-q", "origin", "HEAD:refs/heads/bench"), stage="bench")
        return runner.run(cmdline.git(Path(tmp), "rev-parse", "HEAD"), stage="bench").stdout.strip()


def measure(work: Path, executor_local: str) -> dict[str, Any] | None:
    if binaries.unavailable() or not podman.image_exists(quirks.detect(), executor_local):
        return None
    cluster = LocalCluster(work / "cluster")
    output.say("cluster: up")
    facts = cluster.up()
    old = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = facts.kubeconfig
    try:
        out: dict[str, Any] = {"node_ready_s": facts.ready_seconds}
        out["control_plane_mb"] = rss_mb(cluster, CONTROL_PLANE)
        out["node_mb"] = rss_mb(cluster, ("containerd", "kubelet"))
        executor = images.stock_executor(facts, executor_local, executor_tag="bench")
        stocked = images.stock(facts)
        git_image, bare = stocked.git_image, stocked.bare
        api = kubejob.Cluster(facts.context, "default")
        claim = volumes.host_path_claim(api.core, "bench-pip-cache", work / "pip-cache", namespace="default")
        # (row, a code-only change, the cache repository, the pip cache): the last two are cold builds (each
        # an empty cache repository), the first filling the claim, the second served by it
        runs = (("cold", None, "cache", None), ("rebuild", "\n# benchmark: a code-only change\n", "cache", None),
                ("pipcache_fill", None, "cache-fill", claim), ("cold_pipcache", None, "cache-warm", claim))
        for name, change, cache, pip_cache in runs:
            output.say(f"cluster: the Job, {name}")
            commit = _commit(bare, change)
            slug = name.replace("_", "-")  # a Kubernetes name; `name` keys the figures
            settings = kanikojob.ClusterSettings(
                name=f"bench-{slug}", labels={"io.imagepipe.bench": slug}, git_url=f"{facts.git_url}/todo.git",
                commit=commit, destination=f"{facts.registry}/bench-job:{name}",
                cache_repo=f"{facts.registry}/bench-job/{cache}", registry_secret=f"bench-{slug}", executor=executor,
                git_image=git_image, mirror=facts.registry, insecure=(facts.registry,),
                ca_secret=f"bench-{slug}-ca" if HOST_CA_BUNDLE.exists() else None, pip_cache=pip_cache)
            secrets = [kubejob.registry_secret(settings.registry_secret, {}, json.dumps({"auths": {}}))]
            if settings.ca_secret:
                secrets.append(kubejob.ca_secret(settings.ca_secret, {}, HOST_CA_BUNDLE.read_bytes()))
            result, _ = kubejob.run_job(api, kanikojob.job_for(kanikojob.load(), settings), secrets=secrets,
                                        timeout=1800, on_log=lambda _line: None)
            out[f"job_{name}"] = result.as_dict()["phases"]
        try:
            out["whole"] = whole_job(facts, work, executor, git_image, bare)
        except PipelineError as e:  # the Job's figures above are kept, and the cause is printed with them
            out["whole_error"] = str(e)
        return out
    finally:
        if old is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = old
        cluster.down()


def _checkout(bare: Path, commit: str, into: Path) -> Path:
    """A clone of the bench branch at `commit`: the pipeline runs from it as a CI job would."""
    runner.run(["git", "clone", "-q", str(bare), str(into)], stage="bench")
    runner.run(["git", "-C", str(into), "-c", "advice.detachedHead=false", "checkout", "-q", commit], stage="bench")
    (into / ".venv").symlink_to(ROOT / ".venv")  # the same lock: this checkout's venv serves it as it is
    return into


def _timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.monotonic()
    # a failure or the hour running out is ToolFailed: one line, which the bench keeps beside its figures
    runner.run(argv, cwd=cwd, env=env, timeout=3600, stage="bench", what=f"bench: {' '.join(argv[2:4])}")
    return time.monotonic() - t0


def whole_job(facts: Any, work: Path, executor: str, git_image: str, bare: Path) -> dict[str, Any]:
    """The whole job, cold (empty cache repositories) and after a code-only commit, two ways from the same
    commits: host-driven (`--kube-context`: the Job in the cluster, verify and promote on this machine) and
    in the cluster (`submit`: all of it in ci/pipeline-job.yaml's pod), each timed as a user waits for it."""
    from kubernetes import client, config, utils

    from imagepipe.cluster import team

    api = config.new_client_from_config(config_file=facts.kubeconfig, context=facts.context)
    client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
    utils.create_from_yaml(api, str(ROOT / "ci/rbac.yaml"), namespace=NAMESPACE)
    venv = ROOT / ".venv"
    env = {**os.environ, "KUBECONFIG": facts.kubeconfig}
    # a state directory of its own: this checkout's is locked by the bench itself (one run per state dir)
    image_run = runner.run([str(venv / "bin/python"), str(ROOT / "build/pipeline.py"), "pipeline-image",
                            "--no-provision", "--registry", facts.registry, "--state-dir",
                            str(work / "pipeline-image-state")], cwd=ROOT, env=env, timeout=3600,
                           stage="bench", what="bench: pipeline-image")
    image = image_run.stdout.strip().splitlines()[-1]
    store = Path(tempfile.mkdtemp(prefix="imagepipe-bench-lookaside-"))
    store.chmod(0o755)
    out: dict[str, Any] = {}
    try:
        lookaside = team.set_up(api, NAMESPACE, image=image, store=store, key=team.new_key(work / "team-gnupg"))
        common = ["--no-provision", "--kube-context", facts.context, "--kube-namespace", NAMESPACE,
                  "--registry", facts.registry, "--git-url", f"{facts.git_url}/todo.git", "--kaniko-image",
                  executor, "--git-image", git_image, "--registry-mirror", facts.registry, "--insecure-registry",
                  facts.registry, "--build-ca", str(HOST_CA_BUNDLE), "--vuln-db", "tests/fixtures/osv/pypa",
                  "--vuln-db-max-age", "3650"]
        cold = _commit(bare, None)
        changed = _commit(bare, WHOLE_CHANGE)
        for name, commit in (("cold", cold), ("code_only", changed)):
            tree = _checkout(bare, commit, work / f"whole-{name}")
            python = [str(venv / "bin/python"), "build/pipeline.py"]
            output.say(f"cluster: the whole job, {name}, host-driven")
            # signatures into the clone's state (--lookaside: no signature server is left running here)
            out[f"host_{name}_s"] = round(_timed([*python, *common, "--repo", "bench-host", "--lookaside", lookaside],
                                                 tree, env), 1)
            output.say(f"cluster: the whole job, {name}, in the cluster (submit)")
            out[f"pod_{name}_s"] = round(_timed(
                [*python, "submit", *common, "--repo", "bench-pod", "--pipeline-image", image, "--lookaside",
                 lookaside], tree, env), 1)
        return out
    finally:
        team.tear_down(api, NAMESPACE)
        client.CoreV1Api(api).delete_namespace(NAMESPACE)
        shutil.rmtree(store, ignore_errors=True)
