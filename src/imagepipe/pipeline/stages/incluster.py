"""The build stage with --kube-context: ci/kaniko.yaml's Job in that cluster (builders.kubejob), fed the
exact commit being built, this run's registry credentials as a Secret, and the user's images, mirror and
registry settings; then verify and promote run here as for any build."""

from __future__ import annotations

import logging
import re
import time

from imagepipe.builders import buildsteps, kanikojob, kubejob
from imagepipe.errors import PipelineError, UsageError
from imagepipe.exec import cmdline, runner
from imagepipe.host import git
from imagepipe.image.platforms import Platform
from imagepipe.image.refs import BuildFacts, PushedImage
from imagepipe.pipeline.context import Context, write_state
from imagepipe.ui import output

log = logging.getLogger("imagepipe")


def docker_config(ctx: Context) -> str:
    """The Job's registry credentials: the run's one RegistryAuth (--creds, the auth files, or none), as the
    docker config a kubernetes.io/dockerconfigjson Secret holds."""
    return ctx.access(stage="build").auth.auths_json()


def check_image(ref: str, option: str) -> None:
    """An image the Job will use must exist; where this host reaches its registry, that is checked here
    (the nodes may reach registries this host cannot: then the Job's own pull decides)."""
    result = runner.run(cmdline.skopeo_inspect(ref, raw=True), ok_codes=(0, 1, 2), timeout=60)
    if result.code == 0:
        return
    if re.search(r"manifest unknown|not found|name unknown", result.stderr, re.I):
        raise PipelineError(f"the Job's image {ref} does not exist in its registry: push it there, or pass "
                            f"{option}", stage="build")
    log.info("cannot check %s from this host (%s): the cluster's pull decides", ref,
             runner.first_error_line(result.stderr))


def placement(node_arches: set[str], platform: Platform) -> tuple[str | None, str | None]:
    """(nodeSelector arch, kaniko --custom-platform) for one platform's Job: nodes of that architecture when
    the cluster has them; otherwise the nodes' own architecture, building the platform under emulation."""
    if platform.arch in node_arches:
        return platform.arch, None
    if len(node_arches) == 1:
        return next(iter(node_arches)), str(platform)
    return None, str(platform)


def build(ctx: Context, platform: Platform | None = None) -> PushedImage:
    a = ctx.args
    platform = platform or a.platforms[0]
    if a.kube.context is None:  # the stage table sends only --kube-context runs here
        raise UsageError("the cluster build needs --kube-context NAME")
    if cmdline.registry_is_local(a.registry):
        raise UsageError(f"--kube-context pushes from the cluster: give a --registry it can reach ({a.registry} "
                         "is this machine's loopback)")
    ctx.access(stage="build")  # verify pulls from here what the Job pushes there: TLS, trust, login, now
    url, commit = git.job_source(a.kube.git_url)
    tag = git.platform_tag(f"{git.git_tag(a.building)}-kaniko", platform, len(a.platforms) > 1)
    manifest = kanikojob.load()
    labels = ctx.labels
    cluster = kubejob.Cluster(a.kube.context, a.kube.namespace)
    kubejob.check_namespace(cluster)  # the cluster and namespace first: their lines name the true cause
    placed = len(a.platforms) > 1 or platform.emulated  # the host's platform alone: the manifest as it is
    node_arch, custom = placement(kubejob.node_architectures(cluster), platform) if placed else (None, None)
    if placed:
        where = f"on {node_arch} nodes" if node_arch else "on any node"
        output.say(f"{platform}: {where}" + (f", built under emulation (--custom-platform={custom})" if custom else ""))
    settings = kanikojob.ClusterSettings(
        name=f"todo-backend-kaniko-{ctx.run_id}" + (f"-{platform.arch}" if len(a.platforms) > 1 else ""),
        labels=labels, git_url=url, commit=commit,
        destination=str(ctx.repository.with_tag(tag)), cache_repo=ctx.cache_repository,
        registry_secret=a.kube.secret or f"imagepipe-{ctx.run_id}-registry", executor=a.building.kaniko_image,
        git_image=a.kube.git_image, mirror=a.kube.registry_mirror, insecure=tuple(a.kube.insecure_registry),
        ca_secret=f"imagepipe-{ctx.run_id}-ca" if a.kube.build_ca else None, deadline=a.kube.job_deadline,
        node_arch=node_arch, custom_platform=custom, pip_cache=a.kube.pip_cache)
    job = kanikojob.job_for(manifest, settings)
    for container, image in kanikojob.images(job).items():
        check_image(image, "--kaniko-image" if container == "kaniko" else "--git-image")
    secrets = [] if a.kube.secret else [kubejob.registry_secret(settings.registry_secret, labels, docker_config(ctx))]
    if a.kube.build_ca:
        secrets.append(kubejob.ca_secret(str(settings.ca_secret), labels, a.kube.build_ca.read_bytes()))
    output.say(f"Job {settings.name} in {a.kube.namespace}: commit {commit[:12]} from {url}")
    started = time.time()
    timeout = float(job["spec"].get("activeDeadlineSeconds") or 1800) + 120
    timer = buildsteps.StepTimer("kaniko")  # the steps from the Job's log, timed as its lines arrive

    def on_log(line: str) -> None:
        timer.line(line)
        output.say(f"| {line}")

    result, _ = kubejob.run_job(cluster, job, secrets=secrets, timeout=timeout, on_log=on_log)
    executor = kanikojob.executor_image(job)
    steps = timer.finish()
    facts = BuildFacts("kaniko", executor.rsplit(":", 1)[-1], tuple(steps), started, time.time(),
                       cluster=result.as_dict(), platform=str(platform), emulated=custom is not None)
    output.block(buildsteps.render(steps))
    pushed = PushedImage(ctx.repository.with_digest(result.digest), tag, facts)
    write_state(ctx.state_dir / "last-push.json", {"tag": settings.destination, "image": str(pushed),
                                                   "builder": "kaniko", "job": result.job})
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in result.as_dict()["phases"].items())
    output.say(f"the Job {result.job} (pod {result.pod} on {result.node}) pushed {settings.destination}\n"
               f"{phases}\ndigest {result.digest}")
    return pushed
