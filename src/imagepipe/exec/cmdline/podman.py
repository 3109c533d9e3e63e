"""argv builders for podman (inside the private mount namespace where the host needs one)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imagepipe.exec.cmdline.skopeo import ToolAuth, auth_flags
from imagepipe.host.profile import NS_FILE, HostProfile

__all__ = [
    "HealthFlags", "podman", "podman_exec", "podman_healthcheck_run", "podman_history", "podman_image_exists",
    "podman_import", "podman_inspect", "podman_logs", "podman_ps_labelled", "podman_pull", "podman_rm",
    "podman_run", "podman_tag"
]


@dataclass(frozen=True)
class HealthFlags:
    """A HEALTHCHECK given on the command line (podman applies the other --health-* flags only with
    --health-cmd). `command` is exec form; durations in seconds."""
    command: Sequence[str]
    interval: float
    timeout: float
    start_period: float
    retries: int

    def argv(self) -> list[str]:
        return ["--health-cmd", json.dumps(list(self.command)), "--health-interval", f"{self.interval:g}s",
                "--health-timeout", f"{self.timeout:g}s", "--health-start-period", f"{self.start_period:g}s",
                "--health-retries", str(self.retries)]


def podman(profile: HostProfile, *args: str) -> list[str]:
    """podman, entering the prepared mount namespace on hybrid-cgroup hosts."""
    if profile.needs_mount_namespace:
        return ["nsenter", f"--mount={NS_FILE}", "--", "podman", *args]
    return ["podman", *args]


def _on(condition: bool, *flags: str) -> list[str]:
    return list(flags) if condition else []


def _each(flag: str, values: Sequence[str]) -> list[str]:
    return [part for value in values for part in (flag, value)]


def _limits(profile: HostProfile) -> list[str]:
    """Explicit limits well below this process's hard limits (podman's defaults are higher). Capped at
    16384: crun refused nproc 65536 on a host reporting a hard limit of 96365."""
    if profile.nofile_hard >= 1048576 and profile.nproc_hard >= 4194304:
        return []
    nofile, nproc = min(profile.nofile_hard, 16384), min(profile.nproc_hard, 16384)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


def podman_run(
    profile: HostProfile,
    image: str,
    *,
    name: str | None = None,
    detach: bool = False,
    remove: bool = False,
    env: dict[str, str] | None = None,
    publish: Sequence[str] = (),
    network: str | None = None,
    user: str | None = None,
    entrypoint: str | None = None,
    read_only: bool = False,
    tmpfs: Sequence[str] = (),
    cap_drop_all: bool = False,
    cap_add: Sequence[str] = (),
    no_new_privileges: bool = False,
    privileged: bool = False,
    volumes: Sequence[str] = (),
    labels: dict[str, str] | None = None,
    add_hosts: Sequence[str] = (),
    command: Sequence[str] = (),
    platform: str | None = None,
    health: HealthFlags | None = None,
    host_proxy: bool = True,
) -> list[str]:
    """`podman run` with one flag per option, in podman's order (the table test pins every combination the
    pipeline uses). host_proxy=False: not the host's proxy variables either (podman passes them by default,
    docker does not), so the container's environment is exactly `env` and the image's own."""
    if profile.in_pod:  # the pod's network is the only one: a published port is the container's own
        network, publish = "host", ()
    args = ["run", *_on(detach, "-d"), *_on(remove, "--rm"), *_each("--name", [name] if name else []),
            *_on(profile.hybrid_cgroups or profile.in_pod, "--cgroups=disabled"), *_limits(profile),
            *_each("-e", [f"{k}={v}" for k, v in (env or {}).items()]), *_each("-p", publish),
            *_each("--network", [network] if network else []), *_each("--add-host", add_hosts),
            *_each("--user", [user] if user else []),
            *_each("--entrypoint", [entrypoint] if entrypoint is not None else []),
            *_on(read_only, "--read-only"), *_each("--tmpfs", tmpfs), *_on(cap_drop_all, "--cap-drop", "ALL"),
            *_each("--cap-add", cap_add), *_on(no_new_privileges, "--security-opt", "no-new-privileges"),
            *_on(privileged, "--privileged"), *_each("-v", volumes),
            *_each("--label", [f"{k}={v}" for k, v in (labels or {}).items()]),
            *_each("--platform", [platform] if platform else []), *(health.argv() if health else []),
            *_on(not host_proxy, "--http-proxy=false")]
    return podman(profile, *args, image, *command)


def podman_pull(profile: HostProfile, ref: str, *, auth: ToolAuth | None = None,
                platform: str | None = None) -> list[str]:
    return podman(profile, "pull", "-q", *(["--platform", platform] if platform else []), *auth_flags(ref, auth), ref)


def podman_inspect(profile: HostProfile, kind: str, name: str) -> list[str]:
    """`podman <kind> inspect NAME` as JSON (kind: image, container, network); imagepipe.host.podman reads it."""
    return podman(profile, kind, "inspect", name)


def podman_ps_labelled(profile: HostProfile, label: str) -> list[str]:
    """Ids of every container (any state) carrying `label` (KEY=VALUE)."""
    return podman(profile, "ps", "-a", "-q", "--filter", f"label={label}")


def podman_rm(profile: HostProfile, *names: str, grace: int = 0) -> list[str]:
    """Force-remove containers, giving each `grace` seconds to stop."""
    return podman(profile, "rm", "-f", "-t", str(grace), *names)


def podman_image_exists(profile: HostProfile, ref: str) -> list[str]:
    return podman(profile, "image", "exists", ref)


def podman_tag(profile: HostProfile, src: str, dest: str) -> list[str]:
    return podman(profile, "tag", src, dest)


def podman_import(profile: HostProfile, tarball: Path, ref: str, *, changes: Sequence[str] = (),
                  arch: str | None = None) -> list[str]:
    """A root filesystem tarball as an image, with Containerfile instructions applied (`--change`), for
    another architecture with `arch`."""
    argv = ["import", *(["--arch", arch] if arch else [])]
    for change in changes:
        argv += ["--change", change]
    return podman(profile, *argv, str(tarball), ref)


def podman_history(profile: HostProfile, image: str) -> list[str]:
    """The instruction that created each layer, one per line, untruncated."""
    return podman(profile, "history", "--no-trunc", "--format", "{{.CreatedBy}}", image)


def podman_logs(profile: HostProfile, name: str) -> list[str]:
    return podman(profile, "logs", name)


def podman_exec(profile: HostProfile, name: str, *argv: str) -> list[str]:
    return podman(profile, "exec", name, *argv)


def podman_healthcheck_run(profile: HostProfile, name: str) -> list[str]:
    """One run of the image's HEALTHCHECK (podman schedules them with systemd timers, absent here)."""
    return podman(profile, "healthcheck", "run", name)
