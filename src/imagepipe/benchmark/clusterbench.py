"""bench's cluster rows: the local Kubernetes brought up (time to node Ready, the control plane's memory),
then ci/kaniko.yaml's Job run cold (an empty cache repository) and after a code-only commit (the registry
cache), each timed from submit to digest; beside local kaniko and buildah in the same run."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psutil

from imagepipe import hostenv, output, podmanfacts
from imagepipe.builders import kanikojob, kubejob
from imagepipe.cluster import binaries, images
from imagepipe.cluster.local import LocalCluster
from imagepipe.paths import HOST_CA_BUNDLE, ROOT

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


def _commit(bare: Path, change: str | None) -> str:
    """HEAD pushed to the cluster's git server; with `change`, a commit on top of it that appends it to
    app/main.py (a code-only change), made in a throw-away clone."""
    if change is None:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        subprocess.run(["git", "-C", str(ROOT), "push", "-q", str(bare), f"{commit}:refs/heads/bench"], check=True)
        return commit
    with tempfile.TemporaryDirectory(prefix="imagepipe-bench-git-") as tmp:
        subprocess.run(["git", "clone", "-q", str(bare), tmp, "-b", "bench"], check=True)
        main = Path(tmp) / "backend/app/main.py"
        main.write_text(main.read_text() + change)
        git = ["git", "-C", tmp, "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
        subprocess.run([*git, "commit", "-qam", "bench: a code-only change"], check=True)
        subprocess.run([*git, "push", "-q", "origin", "HEAD:refs/heads/bench"], check=True)
        return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def measure(work: Path, executor_local: str) -> dict[str, Any] | None:
    if binaries.unavailable() or not podmanfacts.image_exists(hostenv.detect(), executor_local):
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
        for name, change in (("cold", None), ("rebuild", "\n# benchmark: a code-only change\n")):
            output.say(f"cluster: the Job, {name}")
            commit = _commit(bare, change)
            settings = kanikojob.ClusterSettings(
                name=f"bench-{name}", labels={"io.imagepipe.bench": name}, git_url=f"{facts.git_url}/todo.git",
                commit=commit, destination=f"{facts.registry}/bench-job:{name}",
                cache_repo=f"{facts.registry}/bench-job/cache", registry_secret=f"bench-{name}", executor=executor,
                git_image=git_image, mirror=facts.registry, insecure=(facts.registry,),
                ca_secret=f"bench-{name}-ca" if HOST_CA_BUNDLE.exists() else None)
            secrets = [kubejob.registry_secret(f"bench-{name}", {}, json.dumps({"auths": {}}))]
            if settings.ca_secret:
                secrets.append(kubejob.ca_secret(settings.ca_secret, {}, HOST_CA_BUNDLE.read_bytes()))
            result, _ = kubejob.run_job(api, kanikojob.job_for(kanikojob.load(), settings), secrets=secrets,
                                        timeout=1800, on_log=lambda _line: None)
            out[f"job_{name}"] = result.as_dict()["phases"]
        return out
    finally:
        if old is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = old
        cluster.down()
