"""`pipeline.py submit`: the whole job for this commit as ci/pipeline-job.yaml's Job in the --kube-context
cluster, from a machine that has only cluster access. It streams the pipeline's output from the pod, writes
the report and JUnit file (--report, --junit) that the pod's log ends with, and exits with the pipeline's
own exit code. Nothing runs here but API calls: the build, verify, the proof and promote run in the pod."""

from __future__ import annotations

import os
import re
from pathlib import Path

from imagepipe.builders import kubejob, pipelinejob
from imagepipe.errors import UsageError
from imagepipe.host import git
from imagepipe.image.platforms import host
from imagepipe.pipeline import report
from imagepipe.pipeline.context import Context
from imagepipe.pipeline.options import EMBEDDED, Options
from imagepipe.ui import output


# the pipeline's own options that mean the same in the pod; the rest are this machine's (paths, ports,
# the state directory) or set by ci/pipeline-job.yaml itself
def forwarded(a: Options) -> list[str]:
    """The options given here that the pipeline in the pod is given too."""
    args: list[str] = []
    given = (("--repo", a.repo), ("--kaniko-image", a.building.kaniko_image), ("--git-image", a.kube.git_image),
             ("--registry-mirror", a.kube.registry_mirror), ("--job-deadline", a.kube.job_deadline),
             ("--kube-secret", a.kube.secret), ("--pip-cache", a.kube.pip_cache),
             ("--cache-repo", a.building.cache_repo))
    for flag, value in given:
        if value is not None:
            args += [flag, str(value)]
    for registry in a.kube.insecure_registry:
        args += ["--insecure-registry", registry]
    for tag in a.signing.tag:
        args += ["--tag", tag]
    if a.platforms != (host(),):  # the default, the host's, is the pod's own node's there
        args += ["--platform", ",".join(str(p) for p in a.platforms)]
    v = a.verifying
    if v.vuln_db is not None:  # check() made sure the commit holds it: the pod's clone has it too
        args += ["--vuln-db", vuln_db_in_commit(v.vuln_db), "--vuln-db-max-age", f"{v.vuln_db_max_age:g}"]
    return args


# settings of the pipeline's own that travel as its environment: a Debian index mirror the pod reaches
FORWARDED_ENV = ("IMAGEPIPE_DEBIAN_SECURITY_INDEX", "IMAGEPIPE_OSV_API")


def forwarded_env() -> tuple[tuple[str, str], ...]:
    return tuple((key, os.environ[key]) for key in FORWARDED_ENV if os.environ.get(key))


def vuln_db_in_commit(path: Path) -> str:
    """The advisory database's path in the commit the pod clones; one line when it is not there (the pod
    reads advisories from the commit or the OSV API: no volume is mounted for them)."""
    relative = git.in_commit(path)
    if relative is None:
        raise UsageError(f"--vuln-db {path} (or IMAGEPIPE_VULN_DB) is not in commit HEAD, so the pipeline's pod "
                         "cannot read it: commit it and give its path in this checkout, or give no --vuln-db and "
                         "no IMAGEPIPE_VULN_DB so the pod asks the OSV API (no volume is mounted for it)",
                         stage="submit")
    return relative


def check(a: Options) -> None:
    for ok, line in (
        (a.kube.context, "submit runs the job in a cluster: pass --kube-context CONTEXT (of $KUBECONFIG)"),
        (a.kube.pipeline_image, "submit needs --pipeline-image REF: the image `python3 build/pipeline.py "
                                "pipeline-image` pushed"),
        (a.registry != EMBEDDED, "submit needs --registry HOST[:PORT]: a registry the cluster reaches (the embedded "
                                 "one is this machine's)"),
        (a.signing.lookaside, "submit needs --lookaside URL: signatures must outlive the pod (ci/lookaside.yaml "
                              "serves them)"),
    ):
        if not ok:
            raise UsageError(line, stage="submit")
    if a.kube.context == kubejob.IN_CLUSTER:
        raise UsageError("submit runs from outside the cluster: inside a pod, run the pipeline itself with "
                         "--kube-context in-cluster", stage="submit")
    if a.verifying.vuln_db is not None:
        vuln_db_in_commit(a.verifying.vuln_db)


def run(ctx: Context) -> int:
    a = ctx.args
    check(a)
    assert a.kube.context is not None and a.kube.pipeline_image is not None and a.signing.lookaside is not None
    url, commit = git.job_source(a.kube.git_url)
    cluster = kubejob.Cluster(a.kube.context, a.kube.namespace)
    kubejob.check_namespace(cluster)
    name = f"todo-backend-pipeline-{ctx.run_id}"
    secrets = []
    if a.kube.build_ca is not None:
        secrets.append(kubejob.ca_secret(f"{name}-ca", ctx.labels, a.kube.build_ca.read_bytes()))
    job = pipelinejob.job_for(pipelinejob.load(), pipelinejob.Submission(
        name=name, image=a.kube.pipeline_image, git_url=url, commit=commit, registry=a.registry,
        lookaside=a.signing.lookaside,
        labels=ctx.labels, git_image=a.kube.git_image, build_ca_secret=f"{name}-ca" if secrets else None,
        extra=tuple(forwarded(a)), env=forwarded_env()))
    deadline = int(job["spec"].get("activeDeadlineSeconds") or 3600)
    output.stage(f"==> submit: Job {name} in {a.kube.namespace}: commit {commit[:12]} from {url}, the pipeline "
                 f"in {a.kube.pipeline_image}")
    lines: list[str] = []

    def echo(line: str) -> None:
        lines.append(line)
        if not line.startswith((report.REPORT_MARK, report.JUNIT_MARK)):
            print(line, flush=True)

    code, _ = kubejob.run_to_end(cluster, job, secrets=secrets, timeout=deadline + 120,
                                 container=pipelinejob.CONTAINER, on_log=echo)
    found, junit = report.from_log(lines)
    for path, text in ((a.verifying.report, found), (a.verifying.junit, junit)):
        if path is not None and text is not None:
            if isinstance(text, dict):
                report.write_json(Path(path), text)
            else:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(text)
    if code == 0:
        output.say(f"the pipeline's Job {name} succeeded (kept for its ttlSecondsAfterFinished: kubectl -n "
                   f"{a.kube.namespace} logs job/{name})")
    else:
        last = next((ln for ln in reversed(lines) if re.match(r"(error|internal error):", ln)), None)
        output.error(f"error: [submit] the pipeline in Job {name} exited {code}"
                     + (f" ({last[:200]})" if last else ""))
    return code
