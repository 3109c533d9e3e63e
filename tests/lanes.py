"""The suite's two lanes, and what only the controller may do.

`python3 build/pipeline.py test` runs pytest with two workers (pytest-xdist) and this module's scheduler
(`pytest_xdist_make_scheduler` in tests/conftest.py: xdist 3.8's own `loadgroup` never groups under pytest
9.2, whose node ids it can no longer rewrite). Every end-to-end module is one group, so its session
fixtures (the state directory, its registry, green's run) are made once, by the worker that runs it; the
cluster's modules are one group, so the session's one cluster is too. The cluster modules mostly wait on
pods, probes and deadlines, so they run beside the local ones.

A probe that looks at the whole host (containers, processes, temp directories) would see the other lane's
work: every probe of a test is scoped to its own run (its run id, its marker, its worker's processes), and
the sweep of what the suite left on the host runs once, in the controller, after both lanes have ended."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling

TESTS = Path(__file__).resolve().parent

# the cluster's modules share the session's one cluster: one group, so one worker brings it up
CLUSTER_GROUP = "cluster"
CLUSTER_MODULES = ("test_cluster_e2e.py", "test_incluster_e2e.py", "test_admission_e2e.py")
# the local modules, the longest first, so that the greedy scheduler ends both lanes near the same time
LOCAL_ORDER = ("test_kaniko_e2e.py", "test_multiarch_e2e.py", "test_registries_e2e.py", "test_cancel_e2e.py",
               "test_reliability_e2e.py", "test_checkouts_e2e.py", "test_supply_chain_e2e.py",
               "test_pipeline_e2e.py", "test_advisories_e2e.py", "test_prodchecks_e2e.py",
               "test_hardened_e2e.py", "test_gotoolchain_e2e.py")


def group(path: Path) -> str | None:
    """The xdist group of a test file: the cluster's, a module's own for the other end-to-end modules, none
    for the unit and backend tests (spread test by test)."""
    if path.parent.name != "e2e":
        return None
    return CLUSTER_GROUP if path.name in CLUSTER_MODULES else path.stem


def rank(path: Path) -> tuple[int, int]:
    """Collection order: the lint gate, the cluster group (the longest lane, so it starts first), the unit
    tests, the backend's, then the local end-to-end modules, longest first."""
    top = path.relative_to(TESTS).parts[0]
    if top == "test_lint_gate.py":
        return 0, 0
    if top != "e2e":
        return {"pipeline": 2, "backend": 3}.get(top, 3), 0
    if path.name in CLUSTER_MODULES:
        return 1, CLUSTER_MODULES.index(path.name)
    return 4, LOCAL_ORDER.index(path.name) if path.name in LOCAL_ORDER else len(LOCAL_ORDER)


def arrange(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: rank(item.path))  # stable: each module keeps pytest's own order


class LaneScheduling(LoadScopeScheduling):
    """xdist's scope scheduling with our groups as the scopes, in collection order (the longest first): a
    group goes whole to one worker, which takes the next one when it is nearly done."""

    def __init__(self, config: pytest.Config, log: object = None) -> None:
        config.option.loadscopereorder = False  # by test count otherwise; our order is by cost
        super().__init__(config, log)  # type: ignore[arg-type]

    def _split_scope(self, nodeid: str) -> str:
        return scope(nodeid)


def scope(nodeid: str) -> str:
    """The unit a worker takes whole: an end-to-end module's group, or a single test."""
    return group(TESTS.parent / nodeid.split("::", 1)[0]) or nodeid


def runs_end_to_end(config: pytest.Config) -> bool:
    """Whether the session's paths take in tests/e2e (its folder, a file in it, or a folder above it): only
    then may the sweep touch the host (a unit-only run beside a suite must leave that suite's work alone).
    A --collect-only session runs nothing, so it never does."""
    if config.option.collectonly:
        return False
    e2e = TESTS / "e2e"
    for arg in config.args:
        path = (config.invocation_params.dir / arg.split("::", 1)[0]).resolve()
        if path == e2e or e2e in path.parents or path in e2e.parents:
            return True
    return False


def is_controller(config: pytest.Config) -> bool:
    """The process that runs the session's ends: the xdist controller, or pytest itself without workers."""
    return not hasattr(config, "workerinput")


# built once per machine and kept, like the stand-in bases: the cluster's clone-step image
PER_MACHINE_IMAGES = ("localhost/imagepipe-git:",)
# what the suite's own images are named: its repositories (todo-backend*, imagepipe*, someone-elses), in
# localhost or in a registry of its own on a loopback or bridge address
SUITE_IMAGE = re.compile(r"^(localhost|127\.0\.0\.1:\d+|10\.\d+\.\d+\.\d+:\d+)/"
                         r"(todo-backend|imagepipe|someone-elses|bench-|pitfalls)")


def host_state() -> tuple[set[str], set[str]] | None:
    """(buildah's working containers, image names) in the host's container storage; None without the tools
    (a unit-only run on a machine that never provisioned)."""
    if not (shutil.which("buildah") and shutil.which("podman")):
        return None

    def listed(*argv: str) -> list[dict]:
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
        return json.loads(out or "null") or []

    containers = {c["id"] for c in listed("buildah", "containers", "--json")}
    names = {n for image in listed("podman", "images", "--format", "json") for n in image.get("Names") or []}
    return containers, names


def sweep(before: tuple[set[str], set[str]]) -> str:
    """Removes every buildah working container that appeared during the session (an interrupted build's
    included: only one suite runs on a machine at a time) and every image name of the suite's own
    repositories it tagged; returns what could not be removed ("" when nothing is left). Other names are
    never touched; layers stay (the build caches are the machine's, as the stand-in bases are)."""
    containers, names = before
    now = host_state()
    assert now is not None
    now_containers, now_names = now
    names |= {n for n in now_names if n.startswith(PER_MACHINE_IMAGES) or not SUITE_IMAGE.match(n)}
    new_containers, new_names = sorted(now_containers - containers), sorted(now_names - names)
    if new_containers:
        subprocess.run(["buildah", "rm", *new_containers], capture_output=True, timeout=300)
    for name in new_names:  # an image with another name keeps it; buildah's intermediate images stay
        subprocess.run(["podman", "rmi", name], capture_output=True, timeout=300)
    after = host_state()
    assert after is not None
    left_containers = after[0] - containers
    left_names = {n for n in after[1] - names if SUITE_IMAGE.match(n)}
    if left_containers or left_names:
        return f"left on the host: buildah containers {sorted(left_containers)}, images {sorted(left_names)}"
    return ""
