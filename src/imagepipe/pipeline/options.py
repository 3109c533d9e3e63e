"""The run's options: one frozen, typed value, built once from the command line (cli.parse_args) and checked
as it is built; environment variables are read here, not at import. What only the run can know (the
embedded registry's address and the signature server's port, claimed under the state directory's lock)
comes in once, as a new value (`resolved`), before any stage runs."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from imagepipe.errors import UsageError
from imagepipe.image import refs
from imagepipe.image.platforms import Platform, parse_list

EMBEDDED = "embedded"
Builder = Literal["buildah", "kaniko"]


@dataclass(frozen=True)
class AuthOptions:
    """--creds, --authfile, --tls-verify: how the run's one registry access is made."""
    creds: str | None
    authfile: Path | None
    tls_verify: bool


@dataclass(frozen=True)
class BuildingOptions:
    containerfile: Path
    context: Path
    base_image: str | None
    rebuild_base: bool
    offline: bool
    builder: Builder  # kaniko with --kube-context
    kaniko_image: str | None
    cache_repo: str | None = None  # kaniko's layer cache repository; None: <repo>/cache


@dataclass(frozen=True)
class TargetingOptions:
    platforms: tuple[Platform, ...]  # at least one; the host's by default


@dataclass(frozen=True)
class KubeOptions:
    """--kube-*: the cluster the kaniko Job (or the whole job, `submit`) runs in."""
    context: str | None
    namespace: str
    git_url: str | None
    git_image: str | None
    registry_mirror: str | None
    insecure_registry: tuple[str, ...]
    secret: str | None
    build_ca: Path | None
    job_deadline: int | None
    pipeline_image: str | None
    pip_cache: str | None = None  # a PersistentVolumeClaim's name


@dataclass(frozen=True)
class VerifyingOptions:
    max_size: float
    database_url: str | None
    report: Path | None
    junit: Path | None
    keep: bool
    vuln_db: Path | None  # --vuln-db, else $IMAGEPIPE_VULN_DB
    vuln_db_max_age: float  # days


@dataclass(frozen=True)
class SigningOptions:
    key: str | None  # --signing-key
    cosign_key: str | None  # --cosign-key: a file, env://, k8s:// or a KMS URI
    cosign_public_key: Path | None
    lookaside: str | None
    lookaside_dir: Path | None
    public_key: Path | None
    tag: tuple[str, ...]
    install: bool


@dataclass(frozen=True)
class BenchingOptions:
    runs: int  # --bench-runs
    kaniko_trials: bool


@dataclass(frozen=True)
class Options:
    """The run's options in the CLI's own groups (cli.arguments): a stage is given the groups it reads."""
    stage: str
    target: tuple[str, ...]
    registry: str  # HOST[:PORT]; the embedded registry's loopback address once resolved
    embedded: bool  # the registry is this checkout's own (the default, or --registry embedded)
    embedded_port: int | None
    sigserver_port: int | None
    repo: str
    no_provision: bool
    state_dir: Path
    json: bool  # output as JSON events
    quiet: bool
    verbose: bool
    auth: AuthOptions
    building: BuildingOptions
    targeting: TargetingOptions
    kube: KubeOptions
    verifying: VerifyingOptions
    signing: SigningOptions
    benching: BenchingOptions

    @property
    def platforms(self) -> tuple[Platform, ...]:
        """Every stage reads it: the targeting group's one value."""
        return self.targeting.platforms

    def resolved(self, *, registry: str | None = None, sigserver_port: int | None = None) -> Options:
        """The same options with what the run claimed filled in."""
        return dataclasses.replace(self, registry=registry or self.registry,
                                   sigserver_port=sigserver_port if sigserver_port is not None else self.sigserver_port)


def check(ns: argparse.Namespace) -> None:
    """Bad input is one line naming the problem and the fix (exit 2), before anything runs."""
    if not refs.is_repository(ns.repo):
        raise UsageError(f"invalid repository name {ns.repo!r}: use lowercase letters, digits and . _ - / "
                         "(e.g. --repo todo-backend)")
    cache_repo = getattr(ns, "cache_repo", None)
    if cache_repo is not None and not refs.is_repository(cache_repo):
        raise UsageError(f"invalid --cache-repo {cache_repo!r}: use lowercase letters, digits and . _ - / "
                         "(e.g. --cache-repo todo-backend/cache)")
    for tag in ns.tag:
        if not refs.is_tag(tag):
            raise UsageError(f"invalid tag {tag!r}: up to 128 of A-Z a-z 0-9 _ . - , not starting with . or -")
    for option, port in (("--embedded-port", ns.embedded_port), ("--sigserver-port", ns.sigserver_port)):
        if port is not None and not 0 < port < 65536:
            raise UsageError(f"invalid {option} {port}: give a TCP port (1-65535)")
    if ns.registry != EMBEDDED and not refs.is_registry(ns.registry):
        raise UsageError(f"invalid registry {ns.registry!r}: give HOST or HOST:PORT (e.g. 127.0.0.1:5000), "
                         "or `embedded`")
    if ns.build_ca is not None and not ns.build_ca.is_file():
        raise UsageError(f"--build-ca {ns.build_ca}: no such file (give a PEM CA bundle)")
    claim = getattr(ns, "pip_cache", None)
    if claim is not None and not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,251}[a-z0-9])?", claim):
        raise UsageError(f"invalid --pip-cache {claim!r}: give the name of a PersistentVolumeClaim in the "
                         "namespace (lower-case letters, digits and -)")
    if claim is not None and not getattr(ns, "kube_context", None):
        raise UsageError("--pip-cache is the cluster Job's: give --kube-context too (a local build uses the "
                         "host's wheelhouse: --offline)")
    if ns.job_deadline is not None and ns.job_deadline <= 0:
        raise UsageError("--job-deadline must be a positive number of seconds")
    if ns.max_size <= 0:
        raise UsageError("--max-size must be a positive number of MB")
    if getattr(ns, "lookaside_dir", None) is not None and not getattr(ns, "lookaside", None):
        raise UsageError("--lookaside-dir needs --lookaside URL: the address consumers read that directory at")
    key = getattr(ns, "signing_key", None)
    if key and ("/" in key or key.endswith(".asc")) and not Path(key).is_file():
        raise UsageError(f"--signing-key {key}: no such file (give an armored secret key, or a fingerprint in "
                         "your keyring)")
    # a key file is checked here; whether cosign can open it (or a URI), before the build (promote.preflight)
    cosign_key = getattr(ns, "cosign_key", None)
    if cosign_key and "://" not in cosign_key and not Path(cosign_key).is_file():
        raise UsageError(f"--cosign-key {cosign_key}: no such file (give a cosign private key file, env://VAR, "
                         "k8s://NAMESPACE/SECRET or a KMS URI)")
    cosign_public = getattr(ns, "cosign_public_key", None)
    if cosign_public is not None and not cosign_public.is_file():
        raise UsageError(f"--cosign-public-key {cosign_public}: no such file (give the signer's cosign public key, "
                         "the PEM `python3 build/pipeline.py public-key` prints)")


def vuln_source(ns: argparse.Namespace) -> tuple[Path | None, float]:
    """--vuln-db and --vuln-db-max-age, else their environment variables, else the OSV API and 7 days;
    checked as they are read."""
    from imagepipe.checks.advisories import DEFAULT_MAX_AGE_DAYS

    path = getattr(ns, "vuln_db", None) or os.environ.get("IMAGEPIPE_VULN_DB") or None
    age = getattr(ns, "vuln_db_max_age", None)
    if age is None:
        raw = os.environ.get("IMAGEPIPE_VULN_DB_MAX_AGE", "")
        try:
            age = float(raw) if raw else DEFAULT_MAX_AGE_DAYS
        except ValueError:
            raise UsageError(f"IMAGEPIPE_VULN_DB_MAX_AGE={raw!r}: give a number of days") from None
    if path and not Path(path).exists():
        named = "--vuln-db" if getattr(ns, "vuln_db", None) else "IMAGEPIPE_VULN_DB"
        raise UsageError(f"{named} {path}: no such file or directory (give OSV's all.zip exports, or a "
                         "directory of them)")
    if age <= 0:
        raise UsageError("--vuln-db-max-age must be a positive number of days")
    return (Path(path) if path else None), age


def from_namespace(ns: argparse.Namespace) -> Options:
    """The options, checked; argparse's namespace is not used after this."""
    check(ns)
    v = dict(vars(ns))
    vuln_db, vuln_db_max_age = vuln_source(ns)
    return Options(
        stage=ns.stage, target=tuple(ns.target), registry=ns.registry, embedded=ns.registry == EMBEDDED,
        embedded_port=ns.embedded_port, sigserver_port=ns.sigserver_port, repo=ns.repo,
        no_provision=ns.no_provision, state_dir=ns.state_dir, json=ns.json, quiet=ns.quiet, verbose=ns.verbose,
        auth=AuthOptions(creds=v.get("creds"), authfile=v.get("authfile"),
                         tls_verify=v.get("tls_verify", "true") != "false"),
        building=BuildingOptions(
            containerfile=ns.containerfile, context=ns.context, base_image=ns.base_image,
            rebuild_base=ns.rebuild_base, offline=ns.offline,
            builder="kaniko" if ns.kube_context else ns.builder, kaniko_image=ns.kaniko_image,
            cache_repo=getattr(ns, "cache_repo", None)),
        targeting=TargetingOptions(platforms=parse_list(getattr(ns, "platform", []))),
        kube=KubeOptions(
            context=ns.kube_context, namespace=ns.kube_namespace, git_url=ns.git_url, git_image=ns.git_image,
            registry_mirror=ns.registry_mirror, insecure_registry=tuple(ns.insecure_registry),
            secret=ns.kube_secret, build_ca=ns.build_ca, job_deadline=ns.job_deadline,
            pipeline_image=ns.pipeline_image, pip_cache=getattr(ns, "pip_cache", None)),
        verifying=VerifyingOptions(max_size=ns.max_size, database_url=ns.database_url, report=ns.report,
                                   junit=ns.junit, keep=ns.keep, vuln_db=vuln_db, vuln_db_max_age=vuln_db_max_age),
        signing=SigningOptions(key=ns.signing_key, cosign_key=ns.cosign_key,
                               cosign_public_key=ns.cosign_public_key, lookaside=ns.lookaside,
                               lookaside_dir=ns.lookaside_dir,
                               public_key=ns.public_key, tag=tuple(ns.tag), install=ns.install),
        benching=BenchingOptions(runs=ns.bench_runs, kaniko_trials=ns.kaniko_trials),
    )
