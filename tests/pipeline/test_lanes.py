"""The suite's lanes: the test command's pytest argv, and the groups and order tests/lanes.py gives."""

from __future__ import annotations

from pathlib import Path

import lanes
import pytest

from imagepipe.cli.verbs.test import pytest_argv

TESTS = Path(lanes.__file__).parent


@pytest.mark.parametrize(("lanes", "target", "workers"), [
    (2, [], ["-n", "2"]),
    (2, ["-ra", "--junitxml=reports/pytest.xml"], ["-n", "2"]),
    (2, ["-n", "0"], []),
    (2, ["-n0"], []),
    (2, ["-n=4"], []),
    (2, ["--numprocesses=auto"], []),
    (2, ["-p", "no:xdist"], []),
    (1, ["-ra"], []),
    (1, ["-n", "2"], []),
])
def test_the_test_command_runs_its_lanes_unless_told_otherwise(monkeypatch, lanes, target, workers):
    from imagepipe.cli.verbs import test

    monkeypatch.setattr(test, "LANES", lanes)
    assert pytest_argv("py", target) == ["py", "-m", "pytest", "--durations=15", *workers, *target]


def test_the_default_is_two_lanes():
    from imagepipe.cli.verbs import test

    assert test.LANES == 2


@pytest.mark.parametrize(("path", "group"), [
    ("e2e/test_cluster_e2e.py", "cluster"),
    ("e2e/test_incluster_e2e.py", "cluster"),
    ("e2e/test_admission_e2e.py", "cluster"),
    ("e2e/test_kaniko_e2e.py", "test_kaniko_e2e"),
    ("e2e/test_cancel_e2e.py", "test_cancel_e2e"),
    ("pipeline/test_lanes.py", None),
    ("backend/test_tasks.py", None),
    ("test_lint_gate.py", None),
])
def test_each_end_to_end_module_is_one_group_and_the_cluster_modules_share_one(path, group):
    assert lanes.group(TESTS / path) == group


def test_every_end_to_end_module_has_its_place_in_the_order():
    """A new module must be placed (longest first), or it would run last whatever its cost."""
    modules = sorted(p.name for p in (TESTS / "e2e").glob("test_*.py"))
    assert modules == sorted((*lanes.CLUSTER_MODULES, *lanes.LOCAL_ORDER))


def test_the_gate_runs_first_then_the_cluster_group_and_the_local_modules_last():
    paths = [TESTS / p for p in ("e2e/test_pipeline_e2e.py", "backend/test_tasks.py", "e2e/test_kaniko_e2e.py",
                                 "e2e/test_admission_e2e.py", "pipeline/test_lanes.py", "e2e/test_incluster_e2e.py",
                                 "test_lint_gate.py", "e2e/test_cluster_e2e.py")]
    ordered = [p.relative_to(TESTS).as_posix() for p in sorted(paths, key=lanes.rank)]
    # the admission module last in its lane: the controller it installs is there for no other module
    assert ordered == ["test_lint_gate.py", "e2e/test_cluster_e2e.py", "e2e/test_incluster_e2e.py",
                       "e2e/test_admission_e2e.py", "pipeline/test_lanes.py", "backend/test_tasks.py",
                       "e2e/test_kaniko_e2e.py", "e2e/test_pipeline_e2e.py"]


@pytest.mark.parametrize(("nodeid", "unit"), [
    ("tests/e2e/test_cluster_e2e.py::test_green_job[a]", "cluster"),
    ("tests/e2e/test_incluster_e2e.py::test_submit", "cluster"),
    ("tests/e2e/test_admission_e2e.py::test_latest_is_resolved_to_the_promoted_digest_admitted_and_ready", "cluster"),
    ("tests/e2e/test_kaniko_e2e.py::test_parity", "test_kaniko_e2e"),
    ("tests/pipeline/test_lanes.py::test_x[1]", "tests/pipeline/test_lanes.py::test_x[1]"),
    ("tests/test_lint_gate.py::test_ruff", "tests/test_lint_gate.py::test_ruff"),
])
def test_the_scheduler_gives_a_worker_a_whole_group_or_a_single_test(nodeid, unit):
    """The scope xdist's scheduler hands out whole (xdist 3.8's `loadgroup` never groups under pytest 9.2)."""
    assert lanes.scope(nodeid) == unit


@pytest.mark.parametrize(("args", "collect_only", "sweeps"), [
    (["tests"], False, True),
    (["tests/e2e"], False, True),
    (["tests/e2e/test_kaniko_e2e.py::test_parity"], False, True),
    (["."], False, True),
    (["tests/pipeline"], False, False),
    (["tests/test_lint_gate.py", "tests/backend"], False, False),
    (["tests/e2e"], True, False),
])
def test_only_a_session_that_runs_end_to_end_tests_sweeps_the_host(args, collect_only, sweeps):
    class Config:
        invocation_params = type("P", (), {"dir": TESTS.parent})
        option = type("O", (), {"collectonly": collect_only})

    config = Config()
    config.args = args  # type: ignore[attr-defined]
    assert lanes.runs_end_to_end(config) is sweeps  # type: ignore[arg-type]
