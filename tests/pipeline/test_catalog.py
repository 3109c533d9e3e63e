"""The check registry: ids, order and families are derived from it, and it lists what the report shows."""

from __future__ import annotations

from imagepipe.checks import catalog

# The report's order and ids, as the README and users' tooling know them.
REPORT_ORDER = ("size", "user", "architecture", "contract-validation", "port", "health-endpoint", "health-status",
                "docs", "env", "database", "database-tls", "auth-jwks", "chat", "mcp", "startup-time", "health-latency",
                "hardened", "tree-readable", "no-build-tools", "no-secrets", "file-ownership", "no-setuid", "no-junk",
                "vulnerabilities")


def test_ids_and_order_are_the_reports():
    assert catalog.CHECK_IDS == REPORT_ORDER
    assert len(set(catalog.CHECK_IDS)) == len(catalog.CHECK_IDS)


def test_every_check_has_a_way_to_run():
    for spec in catalog.CATALOG:
        produced = spec.when in ("tree", "startup")
        assert (spec.fn is None) == produced, spec.id
        assert not (spec.worker and produced), spec.id


def test_service_checks_are_those_that_need_the_service():
    assert catalog.SERVICE_CHECKS == ("port", "health-endpoint", "health-status", "docs", "env", "database",
                                      "database-tls", "auth-jwks", "chat", "mcp", "startup-time", "health-latency",
                                      "hardened")
    assert catalog.TREE_CHECKS == ("tree-readable", "no-build-tools", "no-secrets", "file-ownership", "no-setuid",
                                   "no-junk", "vulnerabilities")


def test_the_main_threads_order_is_derived_from_the_catalog():
    order = [s.id for s in catalog.select("serving", worker=False)]
    # report order, except that the checks that wait run last, overlapping the others
    assert order == ["port", "health-endpoint", "docs", "env", "database", "chat", "hardened", "health-status",
                     "auth-jwks"]


def test_in_a_pod_the_check_that_takes_port_8000_runs_first_on_the_main_thread():
    """The pod has one network: the contract's own container must be gone before the service listens."""
    assert [s.id for s in catalog.select("before", worker=True)] == ["user", "architecture", "contract-validation"]
    assert [s.id for s in catalog.select("before", worker=True, in_pod=True)] == ["user", "architecture"]
    assert [s.id for s in catalog.select("before", worker=False, in_pod=True)] == ["size", "contract-validation"]


def test_an_emulated_image_gets_ten_times_the_start_up_limit_and_a_native_one_the_contracts():
    from imagepipe.checks.types import VerifyOptions, startup_limit_s

    opt = VerifyOptions(startup_limit_s=30.0)
    assert [startup_limit_s(opt, arch, "amd64") for arch in ("amd64", "", "arm64")] == [30.0, 30.0, 300.0]


def test_the_slowdown_is_one_natively_and_ten_under_emulation():
    from imagepipe.checks.types import EMULATED_SLOWDOWN, slowdown

    assert EMULATED_SLOWDOWN == 10
    assert [slowdown(arch, "amd64") for arch in ("amd64", "", "arm64")] == [1, 1, 10]
