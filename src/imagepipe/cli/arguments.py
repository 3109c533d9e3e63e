"""The command line: one subcommand per stage and verb (`pipeline.py build|push|verify|promote|all|parity|
bench|registry|trust|attest|cluster|load|test|…`), each with the option groups it uses, in the pipx style;
no subcommand runs the whole job. The options are also accepted before the subcommand (`pipeline.py
--state-dir D verify REF`), so every documented command line keeps working. options.from_namespace turns the
result into the run's one frozen value."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from imagepipe.paths import ROOT
from imagepipe.pipeline import stagetable
from imagepipe.pipeline.options import EMBEDDED

Add = Callable[..., Any]


def state(add: Add) -> None:
    add("--state-dir", type=Path, default=Path(os.environ.get("IMAGEPIPE_STATE", ROOT / ".state")),
        help="registry data, wheelhouse, caches, lock (default: .state/, or $IMAGEPIPE_STATE)")
    add("--registry", default=EMBEDDED, help="registry HOST[:PORT] to push to, used as given; `embedded` (the "
        "default) starts this checkout's own docker-registry on 127.0.0.1:--embedded-port")
    add("--embedded-port", type=int, help="port of the embedded registry on loopback (default: the one this "
        "checkout used before, else 5000, else the next free one)")
    add("--sigserver-port", type=int, help="port of the signature server on loopback (default: the one this "
        "checkout used before, else 5080, else the next free one)")
    add("--repo", default="todo-backend", help="repository name in the registry (default: todo-backend)")
    add("--no-provision", action="store_true", default=False, help="skip the provision stage")
    add("-v", "--verbose", action="store_true", default=False, help="debug lines, the tools' output, tracebacks")
    add("-q", "--quiet", action="store_true", default=False, help="warnings and errors only")
    add("--json", action="store_true", default=False, help="output as JSON events, one per line (level, stage, "
        "message); bench's figures and load's result as one event")


def auth(add: Add) -> None:
    add("--creds", help="USER:PASSWORD for the registry, or USER with the password in IMAGEPIPE_REGISTRY_PASSWORD "
        "(default: the auth files podman login and docker login write)")
    add("--authfile", type=Path, help="registry auth file (default: $REGISTRY_AUTH_FILE, then podman's and docker's)")
    add("--tls-verify", choices=("true", "false"), default="true",
        help="false: do not verify the registry's TLS certificate (insecure; logged on every run)")


def building(add: Add) -> None:
    add("--containerfile", type=Path, default=ROOT / "build/Containerfile", help="default: build/Containerfile")
    add("--context", type=Path, default=ROOT / "backend", help="build context (default: backend/)")
    add("--base-image", help="use this image as python:3.11-slim (tagged locally under that name)")
    add("--rebuild-base", action="store_true", default=False, help="rebuild the offline base stand-in")
    add("--offline", action="store_true", default=False,
        help="install Python packages from a host-side wheelhouse (built once, then no network)")
    add("--builder", choices=("buildah", "kaniko"), default="buildah", help="buildah (local image, then push) or "
        "kaniko (the executor image in podman, or the Job of ci/kaniko.yaml with --kube-context)")
    add("--kaniko-image", help="the kaniko executor image (default: the one pinned in ci/kaniko.yaml)")
    add("--cache-repo", metavar="REPO", help="kaniko: the repository in --registry holding its layer cache "
        "(default: REPO/cache); images built from the same Containerfile may share one, since its keys are "
        "content hashes")


def kube(add: Add) -> None:
    add("--kube-context", help="build with kaniko as the Job of ci/kaniko.yaml in this cluster context (of "
        "$KUBECONFIG, else ~/.kube/config; `in-cluster`: the ServiceAccount of the pod this runs in), prove the "
        "verified digest there as a Deployment, then promote")
    add("--kube-namespace", default="default", help="namespace of the Job (default: default)")
    add("--git-url", help="--kube-context: the repository the Job fetches this commit from (default: origin's URL)")
    add("--git-image", help="--kube-context: the image of the Job's clone step (default: the manifest's)")
    add("--registry-mirror", help="--kube-context: kaniko pulls docker.io images from this registry mirror, and "
        "never from docker.io")
    add("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]",
        help="--kube-context: a plain-HTTP registry kaniko may push to and pull from (repeatable); inside the "
        "pipeline's own image, its tools are told so too")
    add("--kube-secret", help="--kube-context: an existing kubernetes.io/dockerconfigjson Secret for the Job "
        "(default: one made for the run from the run's credentials, then deleted)")
    add("--build-ca", type=Path, help="a CA bundle the build's pip must trust: locally instead of the host's own "
        "bundle; with --kube-context given to the Job as a Secret mounted at /run/host-ca.crt")
    add("--pip-cache", metavar="CLAIM", help="--kube-context: a PersistentVolumeClaim mounted at /run/pip-cache, "
        "where the Job's build keeps a wheelhouse per requirements.txt (psycopg-c compiled once); the image is "
        "the same with it or without")
    add("--job-deadline", type=int, help="--kube-context: the Job's activeDeadlineSeconds (default: the manifest's)")
    add("--pipeline-image", help="submit: the pipeline's own image the cluster runs the whole job in (the "
        "reference `pipeline-image` prints)")


def verifying(add: Add) -> None:
    add("--max-size", type=float, default=150.0, help="size limit in MB (default: 150)")
    add("--database-url", help="verify against this database (as the container sees it) instead of a throw-away "
        "PostgreSQL")
    add("--report", type=Path, help="write the JSON report here")
    add("--junit", type=Path, help="write JUnit XML here")
    add("--keep", action="store_true", default=False, help="keep the verify containers for debugging")
    add("--vuln-db", type=Path, metavar="DIR|ZIP", help="OSV advisories to scan the image's packages against: "
        "OSV's per-ecosystem all.zip exports (PyPI, Debian), or a directory of them or of records (default: "
        "$IMAGEPIPE_VULN_DB, else the OSV API)")
    add("--vuln-db-max-age", type=float, metavar="DAYS", help="refuse a --vuln-db whose newest record is older "
        "(default: $IMAGEPIPE_VULN_DB_MAX_AGE, else 7)")


def signing(add: Add) -> None:
    add("--signing-key", help="GPG fingerprint in your keyring to sign with, or a file holding an armored "
        "secret key (a mounted Secret; imported for the run only) (default: the pipeline's own key, generated "
        "once into the state directory)")
    add("--lookaside", help="URL where consumers read signatures (default: the signature server on "
        "127.0.0.1:--sigserver-port, serving <state>/sigstore/lookaside)")
    add("--lookaside-dir", type=Path, help="with --lookaside: the directory that URL serves, where promote "
        "writes the signatures (a volume the lookaside server shares; default <state>/sigstore/lookaside)")
    add("--public-key", type=Path, help="attest verify / trust: the signer's public key (default: the pipeline "
        "key's, <state>/signing/pipeline-key.pub)")
    add("--cosign-key", help="the cosign key promote signs and attests with, as cosign takes it: a key file, "
        "env://VAR, k8s://NAMESPACE/SECRET or a KMS URI (awskms://, gcpkms://, azurekms://, hashivault://); a "
        "password-protected key reads COSIGN_PASSWORD (default: the pipeline's own pair, generated once into "
        "<state>/cosign)")
    add("--cosign-public-key", type=Path, help="attest verify: the cosign public key (default: the pipeline's, "
        "<state>/cosign/cosign.pub)")
    add("--tag", action="append", default=[], help="extra tag to promote besides latest (repeatable)")
    add("--install", action="store_true", default=False, help="trust: install the policy system-wide")


def targeting(add: Add) -> None:
    add("--platform", action="append", default=[], metavar="OS/ARCH[,OS/ARCH]",
        help="the platforms to build and verify, e.g. linux/amd64,linux/arm64 (repeatable; default: the host's); "
        "another architecture runs under qemu user emulation, and several make one index")


def benching(add: Add) -> None:
    add("--bench-runs", type=int, default=3, help="bench: alternating rounds of the service figures (median)")
    add("--kaniko-trials", action="store_true", default=False,
        help="bench: also time kaniko's cached rebuild under each fork option that touches caching")


GROUPS = (state, auth, building, targeting, kube, verifying, signing, benching)
JOB = (auth, building, targeting, kube, verifying, signing)
COMMANDS: dict[str, tuple[Callable[[Add], None], ...]] = {
    "all": JOB, "provision": (), "base": (building, targeting), "lint": (building,),
    "build": (auth, building, targeting, kube), "push": (auth, building, targeting),
    "verify": (auth, targeting, verifying), "promote": JOB, "registry": (),
    "parity": (auth, building, targeting, kube, verifying), "bench": (building, targeting, benching),
    "load": (building, verifying), "trust": (signing,), "attest": (auth, signing), "deployment": (auth,),
    "public-key": (signing,),
    "pipeline-image": (auth, building), "submit": JOB, "cluster": (), "test": (),
}
TARGETS = {"verify": "REGISTRY/REPO@sha256:… to verify", "registry": "start | stop | status",
           "attest": "verify REGISTRY/REPO@sha256:…",
           "deployment": "REGISTRY/REPO@sha256:… to deploy",
           "public-key": "[IMAGE-GLOB]: print ci/admission-policy.yaml for those images and this key instead",
           "cluster": "up | down | status", "load": "[IMAGE]",
           "test": "arguments for pytest (after --)"}


class Parser(argparse.ArgumentParser):
    """Bad usage is one line naming the problem and where the options are listed (exit 2), not the whole
    usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (options: `{self.prog} --help`)\n")


def _adder(parser: argparse.ArgumentParser, *, suppress: bool) -> Add:
    """add_argument, with every default suppressed in a subcommand: only what is given there overrides
    what was given before it (argparse would otherwise reset those to their defaults)."""
    def add(*flags: str, **kw: Any) -> Any:
        if suppress:
            kw["default"] = argparse.SUPPRESS
        return parser.add_argument(*flags, **kw)
    return add


def parse_args(argv: list[str]) -> argparse.Namespace:
    top = Parser(
        prog="python build/pipeline.py",
        description="Build the backend image with buildah, push it, verify it with podman, promote it.",
        epilog=stagetable.help_text(), formatter_class=argparse.RawDescriptionHelpFormatter)
    for group in GROUPS:
        group(_adder(top, suppress=False))
    subs = top.add_subparsers(dest="stage", metavar="STAGE", help="a stage or verb (default: all, every stage)")
    helps = {s.name: s.description for s in stagetable.STAGES} | {v.name: v.description for v in stagetable.VERBS}
    for name, groups in COMMANDS.items():
        sub = subs.add_parser(name, help=helps.get(name, "every stage in order"),
                              description=helps.get(name, "every stage in order"))
        for each in (state, *groups):
            each(_adder(sub, suppress=True))
        if name in TARGETS:
            sub.add_argument("target", nargs="*", metavar="ARG", help=TARGETS[name])
    ns = top.parse_args(argv)
    ns.stage = ns.stage or "all"
    ns.target = getattr(ns, "target", [])
    return ns
