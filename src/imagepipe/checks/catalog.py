"""The check registry: every check verify runs, by id, with its family and when it runs. The report's order,
the list of ids and the service checks (whose failures carry the container's state) all derive from it.
Adding a check: write `fn(verifier) -> Check` in the module of its family and add one line here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from imagepipe.checks import contractrun, prodchecks, runtimechecks
from imagepipe.checks.types import Check, CheckRun

Family = Literal["image", "service"]  # reads the image (tree, config, a container of its own) | asks the service
When = Literal["before", "startup", "serving", "tree"]  # before the service starts | its start-up | once it answers
#                                                        | the one pass over the image's tree (staticchecks.run)


@dataclass(frozen=True)
class Spec:
    id: str
    family: Family
    when: When
    fn: Callable[[CheckRun], Check] | None = None  # None: produced by the start-up or the tree pass
    worker: bool = False  # runs in a worker thread beside the main thread's checks (own containers/connections)
    late: bool = False  # the main thread runs it after the quick ones: it waits (its wait overlaps the others)
    # listens on the container's port 8000: inside a pod (one network for all) it runs on the main thread
    # before the service and the not-serving container take that port
    own_port: bool = False


CATALOG: tuple[Spec, ...] = (  # in report order
    Spec("size", "image", "before", runtimechecks.size),
    Spec("user", "image", "before", runtimechecks.user, worker=True),
    Spec("architecture", "image", "before", runtimechecks.architecture, worker=True),
    Spec("contract-validation", "image", "before", contractrun.contract_validation, worker=True, own_port=True),
    Spec("port", "service", "serving", runtimechecks.port),
    Spec("health-endpoint", "service", "serving", runtimechecks.health_endpoint),
    Spec("health-status", "service", "serving", runtimechecks.health_status, late=True),  # the start period
    Spec("docs", "service", "serving", runtimechecks.docs),
    Spec("env", "service", "serving", runtimechecks.env),
    Spec("database", "service", "serving", runtimechecks.database),
    Spec("database-tls", "service", "serving", prodchecks.check_database_tls, worker=True),
    Spec("auth-jwks", "service", "serving", prodchecks.check_auth_jwks, late=True),  # the JWKS cooldown
    Spec("chat", "service", "serving", prodchecks.check_chat),
    Spec("mcp", "service", "serving", prodchecks.check_mcp, worker=True),
    Spec("startup-time", "service", "startup"),
    Spec("health-latency", "service", "serving", runtimechecks.latency, worker=True),
    Spec("hardened", "service", "serving", runtimechecks.hardened),
    Spec("tree-readable", "image", "tree"),
    Spec("no-build-tools", "image", "tree"),
    Spec("no-secrets", "image", "tree"),
    Spec("file-ownership", "image", "tree"),
    Spec("no-setuid", "image", "tree"),
    Spec("no-junk", "image", "tree"),
    Spec("vulnerabilities", "image", "tree"),
)

CHECK_IDS = tuple(s.id for s in CATALOG)
SERVICE_CHECKS = tuple(s.id for s in CATALOG if s.family == "service")
TREE_CHECKS = tuple(s.id for s in CATALOG if s.when == "tree")


def select(when: When, *, worker: bool, in_pod: bool = False) -> list[Spec]:
    """The checks of one phase and thread, in the order they run: the catalog's, late ones last."""
    found = [s for s in CATALOG if s.when == when and (s.worker and not (in_pod and s.own_port)) is worker
             and s.fn is not None]
    return sorted(found, key=lambda s: s.late)
