"""Removing what a run started: its containers (by label), buildah's working containers (by name), and
what a killed run on the same state directory left behind (its marker names it)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from imagepipe.errors import PipelineError, ToolFailed
from imagepipe.exec import cancel, cmdline, runner
from imagepipe.host import profile, quirks
from imagepipe.ui import output


def remove_run_containers(profile: profile.HostProfile, run_id: str) -> int:
    """Every container of this run, whatever state it is in: podman's by their label (verify, bench, kaniko),
    buildah's working containers (mounted images) by their name."""
    removed = 0
    if runner.installed("buildah") is not None:
        # bounded: a build killed mid-step can hold buildah's storage lock for a moment; clean-up goes on
        with contextlib.suppress(ToolFailed):
            names = runner.run(cmdline.buildah_containers(), ok_codes=(0, 1, 125), timeout=10).stdout
            ours = [n for n in names.split() if n.startswith(f"imagepipe-{run_id}-")]
            if ours:
                runner.run(cmdline.buildah_rm(*ours), ok_codes=(0, 1, 125), timeout=20)
                removed += len(ours)
    if runner.installed("podman") is None:
        return removed
    quirks.ensure_mount_namespace(profile)
    ids = runner.run(cmdline.podman_ps_labelled(profile, f"{cancel.LABEL}={run_id}"),
                     ok_codes=(0, 125), timeout=30).stdout.split()
    if ids:
        runner.run(cmdline.podman_rm(profile, *ids), ok_codes=(0, 1, 125), timeout=60)
    return removed + len(ids)


def clean_leftovers(profile: profile.HostProfile, state_dir: Path, run: cancel.Run) -> None:
    """What a killed run on this state directory left behind (its marker names it): removed before we start."""
    for marker in cancel.leftovers(state_dir, own=run.id):
        containers = remove_run_containers(profile, marker["id"])
        databases = sum(cancel.kill_postgres(Path(d)) for d in marker.get("postgres", []))
        for entry in marker.get("temp_dirs", []):  # verify's TLS directory
            cancel.remove_temp_dir(entry)
        for leftover in (state_dir / "kaniko").glob(f"kaniko-{marker['id']}.*"):
            leftover.unlink(missing_ok=True)  # its termination log, or a docker config holding credentials
        shutil.rmtree(state_dir / "access" / marker["id"], ignore_errors=True)  # its auth file
        for entry in marker.get("kube", []):  # a cluster Job, its pods and the run's Secrets
            from imagepipe.builders import kubejob

            try:
                output.say(f"deleted {kubejob.clean_leftover(entry)} of interrupted run {marker['id']}")
            except PipelineError as e:
                output.say(f"could not delete the cluster Job of interrupted run {marker['id']}: {e.message}")
        Path(marker["_marker"]).unlink(missing_ok=True)
        output.say(f"cleaned up after interrupted run {marker['id']}: {containers} container(s), "
                   f"{databases} throw-away PostgreSQL")
