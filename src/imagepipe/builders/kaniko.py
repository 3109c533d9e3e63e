"""The kaniko half: the same Containerfile built by the kaniko executor, locally in podman or as the Job of
ci/kaniko.yaml in a cluster. Both push the image themselves and hand back its digest; verify and promote
then run exactly as for buildah.

The executor is named only by image reference: `--kaniko-image REF`, else the image pinned in the manifest
(which a machine with internet access pulls). This project never builds one.
"""

from __future__ import annotations

import logging
import re
import secrets
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagepipe.builders import buildsteps, kanikofailure, kanikojob
from imagepipe.errors import PipelineError, ToolFailed, pip_failure
from imagepipe.exec import cmdline, runner
from imagepipe.host import podman
from imagepipe.host.profile import HostProfile
from imagepipe.image.containerfile import BASE_REF, base_ref
from imagepipe.image.platforms import Platform
from imagepipe.image.refs import Step
from imagepipe.paths import HOST_CA_BUNDLE
from imagepipe.pipeline import multiarch
from imagepipe.registry import oci
from imagepipe.registry.access import open_access, registry_cas
from imagepipe.registry.auth import RegistryAuth, write_private

log = logging.getLogger("imagepipe.builders.kaniko")

# Where the local run mounts things inside the executor container.
CONTEXT_MOUNT = "/workspace/context"
CONTAINERFILE_MOUNT = "/workspace/Containerfile"
CA_MOUNT = "/run/host-ca.crt"  # the Containerfile's RUN uses it for pip when present; kaniko skips mounts
WHEELS_MOUNT = "/run/wheels"
DOCKER_CONFIG_MOUNT = "/kaniko/.docker/config.json"
REGISTRY_CA_MOUNT = "/kaniko/registry-ca.crt"


@dataclass(frozen=True)
class KanikoBuild:
    digest: str
    destination: str
    seconds: float
    steps: list[Step]


def executor_image(profile: HostProfile, override: str | None) -> str:
    """The executor image to run: present locally, or pullable; otherwise one line on how to supply one."""
    ref = override or kanikojob.executor_image(kanikojob.load())
    if podman.image_exists(profile, ref):
        return ref
    try:
        runner.run(cmdline.podman_pull(profile, ref), stage="build", timeout=600, what="pulling the executor")
        return ref
    except ToolFailed:
        raise PipelineError(
            f"no kaniko executor image {ref} on this machine and it cannot be pulled: pass --kaniko-image REF "
            "(an image with /kaniko/executor, e.g. one built from the osscontainertools/kaniko fork), or "
            f"make {ref} pullable", stage="build") from None


def local_argv(profile: HostProfile, *, executor: str, job: dict[str, Any], context: Path,
               containerfile: Path, destination: str, cache_repo: str, registry: str, termination_log: Path,
               name: str, labels: dict[str, str], docker_config_file: Path | None = None,
               wheelhouse: Path | None = None, registry_ca: Path | None = None,
               trial: dict[str, str] | None = None, platform: Platform | None = None,
               build_ca: Path | None = None) -> list[str]:
    """podman running the executor as the Job would: the manifest's args (rewritable ones set), its
    securityContext as podman expresses it, and the termination-log file kubelet would provide."""
    sec = kanikojob.security(job)
    loopback = registry if cmdline.registry_is_local(registry) else None
    args = kanikojob.local_args(job, context=CONTEXT_MOUNT, dockerfile=CONTAINERFILE_MOUNT,
                                destination=destination, cache_repo=cache_repo, loopback_registry=loopback)
    if wheelhouse is not None:  # local-only, as for buildah: the wheelhouse keys the layer cache
        args.append(f"--build-arg=WHEELHOUSE={wheelhouse.name}")
    if platform is not None and platform.emulated:  # its RUN steps under qemu user emulation (binfmt, F flag)
        args.append(f"--custom-platform={platform}")
    env = kanikojob.executor_env(job)
    for key, value in (trial or {}).items():  # bench's flag trials: FF_* env values, or extra --flags
        if key.startswith("--"):
            args.append(f"{key}={value}")
        else:
            env[key] = value
    volumes = [f"{context.resolve()}:{CONTEXT_MOUNT}:ro", f"{containerfile.resolve()}:{CONTAINERFILE_MOUNT}:ro",
               f"{termination_log}:/dev/termination-log"]
    if wheelhouse is not None:
        volumes.append(f"{wheelhouse}:{WHEELS_MOUNT}:ro")
    elif build_ca is not None:
        volumes.append(f"{build_ca}:{CA_MOUNT}:ro")
    if docker_config_file is not None:
        volumes.append(f"{docker_config_file}:{DOCKER_CONFIG_MOUNT}:ro")
    if registry_ca is not None:  # the registry's own CA from certs.d, which kaniko does not read
        volumes.append(f"{registry_ca}:{REGISTRY_CA_MOUNT}:ro")
        args.append(f"--registry-certificate={registry}={REGISTRY_CA_MOUNT}")
    return cmdline.podman_run(
        profile, executor, name=name, remove=True, env=env,
        network="host" if loopback else None, user=sec.user,
        cap_drop_all=sec.drop_all, cap_add=sec.cap_add, no_new_privileges=sec.no_new_privileges,
        privileged=sec.privileged, volumes=volumes, labels=labels, command=args)


def build_local(profile: HostProfile, *, executor: str, context: Path, containerfile: Path, destination: str,
                cache_repo: str, registry: str, work_dir: Path, labels: dict[str, str],
                auth: RegistryAuth | None = None, wheelhouse: Path | None = None,
                run_id: str | None = None, trial: dict[str, str] | None = None,
                platform: Platform | None = None, build_ca: Path | None = HOST_CA_BUNDLE) -> KanikoBuild:
    """With `auth`, kaniko gets the run's credentials as its docker config (0600, removed afterwards) and the
    registry's certs.d CA, if it has one. `build_ca` is the bundle its RUN steps trust for pip (none offline)."""
    job = kanikojob.load()
    run_id = run_id or secrets.token_hex(4)
    work_dir.mkdir(parents=True, exist_ok=True)
    termination_log = work_dir / f"kaniko-{run_id}.termination-log"
    termination_log.write_text("")
    config_file = None
    if auth is not None and not auth.anonymous:
        config_file = write_private(auth, work_dir / f"kaniko-{run_id}.docker-config.json")
    cas = registry_cas(registry)
    argv = local_argv(profile, executor=executor, job=job, context=context, containerfile=containerfile,
                      destination=destination, cache_repo=cache_repo, registry=registry,
                      termination_log=termination_log, name=f"imagepipe-kaniko-{run_id}", labels=labels,
                      docker_config_file=config_file, wheelhouse=wheelhouse, registry_ca=cas[0] if cas else None,
                      trial=trial, platform=platform,
                      build_ca=build_ca if build_ca is not None and build_ca.exists() else None)
    t0 = time.monotonic()
    timer = buildsteps.StepTimer("kaniko")
    try:
        result = runner.run(argv, stage="build", timeout=3600, what="kaniko executor", on_line=timer.line)
        digest = termination_log.read_text().strip()
    except ToolFailed as e:
        raise explain_failure(e, registry=registry, context=context) from None
    finally:
        termination_log.unlink(missing_ok=True)
        if config_file is not None:
            config_file.unlink(missing_ok=True)
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise PipelineError(f"kaniko finished but wrote no digest to its termination log (got {digest[:80]!r})",
                            stage="build", detail=result.stdout + result.stderr)
    return KanikoBuild(digest, destination, time.monotonic() - t0, timer.finish())


def explain_failure(e: ToolFailed, *, registry: str, context: Path) -> PipelineError:
    """kaniko's failures, as one line naming the problem and the fix (kanikofailure reads the cause from
    kaniko's own error line); the detail without kaniko's colour codes."""
    out, full = kanikofailure.clean(e.output), kanikofailure.clean(e.full)
    failure = kanikofailure.classify(full.splitlines())
    if failure.kind == "run-step":
        explained = pip_failure(full, context)
        if explained:
            return explained
    if failure.kind == "credentials":
        return PipelineError(f"the registry {registry} refused kaniko's credentials ({failure.line[:160]}): pass "
                             "--creds USER:PASSWORD or --authfile", stage="build", detail=out)
    return PipelineError(f"kaniko failed: {(failure.line or e.message)[:300]}", stage="build", detail=out)


def seed_mirror(profile: HostProfile, registry: str, platforms: Sequence[Platform] = (), *,
                stage: str = "build") -> str:
    """kaniko pulls its base from a registry, never from local storage: the local python:3.11-slim (the
    official image or the offline stand-in) goes to the registry kaniko uses as its mirror of docker.io.
    Several platforms: each one's base under `3.11-slim-linux-ARCH`, and an index of them under the name,
    as docker.io has it (kaniko's --custom-platform then picks its own)."""
    dest = f"{registry}/{BASE_REF.split('/', 1)[1]}"
    if len(platforms) < 2:
        source = base_ref(platforms[0]) if platforms else BASE_REF
        runner.run(cmdline.skopeo_copy_from_storage(source, dest), stage=stage, timeout=600,
                   what="seeding the registry mirror with the base image")
        return dest
    repo, tag = dest.split("/", 1)[1].rsplit(":", 1)
    for p in platforms:
        runner.run(cmdline.skopeo_copy_from_storage(base_ref(p), f"{dest}-{p.slug}"), stage=stage, timeout=600,
                   what=f"seeding the registry mirror with the {p} base")
    with tempfile.TemporaryDirectory(prefix="imagepipe-mirror-") as work:
        access = open_access(RegistryAuth(registry), tls_verify=True, work=Path(work), stage=stage)
        reg = oci.Registry(access, repo, stage=stage)
        multiarch.put_index(reg, tag, [(p, f"{tag}-{p.slug}") for p in platforms], stage=stage)
    return dest
