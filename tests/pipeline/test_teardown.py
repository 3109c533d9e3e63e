"""The local cluster's teardown keeps a failing step and goes on (`down` reports them all at the end)."""

from __future__ import annotations

from pathlib import Path

from imagepipe.cluster import teardown


def test_a_teardown_step_that_fails_is_kept_with_its_exit_code_and_the_next_still_runs():
    failures = teardown.Failures()
    assert failures.run(["false"]) is None
    assert failures.run(["true"]) is not None  # a later step is not skipped because one failed
    assert len(failures) == 1 and "false failed (exit 1)" in failures[0]


def test_a_path_that_is_not_mounted_is_not_unmounted(tmp_path: Path):
    failures = teardown.Failures()
    teardown.unmount(tmp_path / "never-mounted", failures)
    assert failures == []
    assert "/" in teardown.mount_points() and "/proc" in teardown.mount_points()
