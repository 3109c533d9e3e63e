"""What a failed kaniko run is reported as, from its output alone (no binaries): the cause is kaniko's own
error line, never a word in a RUN step's output; pip's TLS failure names --build-ca; colour codes go."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagepipe.builders import kaniko, kanikofailure, kubewatch
from imagepipe.errors import ToolFailed, pip_failure

# apt in the builder stage prints this on every build of our Containerfile (kaniko runs RUN as root with no _apt)
APT = ("W: Download is performed unsandboxed as root as file '/var/cache/apt/archives/partial/binutils_2.40-2_amd64"
       ".deb' couldn't be accessed by user '_apt'. - pkgAcquire::Run (13: Permission denied)")
RUN_FAILED = "error building image: error building stage: failed to execute command: waiting for process to exit: " \
             "exit status 3"
PUSH_REFUSED = ('error checking push permissions: checking push permission for "10.244.0.1:5001/todo-backend:x": '
                "POST http://10.244.0.1:5001/v2/todo-backend/blobs/uploads/: UNAUTHORIZED: authentication required; "
                "[map[Action:pull Class: Name:todo-backend Type:repository]]")
PIP_TLS = ("WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection "
           "broken by 'SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
           "failed: unable to get local issuer certificate (_ssl.c:1006)'))': /simple/annotated-types/",
           "Could not fetch URL https://10.244.0.1:8443/simple/annotated-types/: There was a problem confirming the "
           "ssl certificate: HTTPSConnectionPool(host='10.244.0.1', port=8443): Max retries exceeded with url: "
           "/simple/annotated-types/ (Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] "
           "certificate verify failed: unable to get local issuer certificate (_ssl.c:1006)'))) - skipping",
           "ERROR: Could not find a version that satisfies the requirement annotated-types==0.7.0 "
           "(from versions: none)",
           "ERROR: No matching distribution found for annotated-types==0.7.0")
COLOUR = "\x1b[36mINFO\x1b[0m[0072] RUN set -eu;"


@pytest.mark.parametrize(("lines", "kind", "line"), [
    # a RUN that prints "Permission denied" and fails is a failed RUN, not refused credentials
    ([COLOUR, APT, "E: open (13: Permission denied)", RUN_FAILED], "run-step", RUN_FAILED),
    ([COLOUR, APT, "WARN[0000] make sure you entered the correct tag name", PUSH_REFUSED], "credentials", PUSH_REFUSED),
    (["error pushing image: failed to push to destination r/t:x: DENIED: requested access to the resource is denied"],
     "credentials", "error pushing image: failed to push to destination r/t:x: DENIED: requested access to the "
     "resource is denied"),
    ([APT, "error building image: GET http://r/v2/library/python/manifests/3.11-slim: UNAUTHORIZED: authentication "
      "required"], "credentials", "error building image: GET http://r/v2/library/python/manifests/3.11-slim: "
     "UNAUTHORIZED: authentication required"),
    ([APT, "\x1b[31mERRO\x1b[0m[0001] something broke", "error resolving dockerfile path: no such file"], "other",
     "error resolving dockerfile path: no such file"),
])
def test_the_cause_is_kanikos_own_error_line(lines, kind, line):
    assert kanikofailure.classify(lines) == kanikofailure.Failure(kind, line)


def test_pips_tls_failure_names_build_ca():
    error = pip_failure("\n".join((*PIP_TLS, RUN_FAILED)), Path("backend"))
    assert error is not None
    assert error.message.startswith("pip in the build does not trust the TLS certificate of 10.244.0.1:8443 "
                                    "(CERTIFICATE_VERIFY_FAILED): pass --build-ca FILE")


def job_failure(lines: list[str]) -> str:
    return kubewatch.explain_build("todo-backend-kaniko-r1", 3, "Error", lines).message


def test_the_jobs_failed_run_step_is_reported_as_one():
    assert job_failure([APT, "E: open (13: Permission denied)", RUN_FAILED]) == \
        f"kaniko Job todo-backend-kaniko-r1 failed (exit 3): {RUN_FAILED}"


def test_the_jobs_tls_failure_names_build_ca():
    message = job_failure([APT, *PIP_TLS, RUN_FAILED])
    assert message.startswith("kaniko Job todo-backend-kaniko-r1: pip in the build does not trust the TLS "
                              "certificate of 10.244.0.1:8443")
    assert "--build-ca" in message


def test_the_jobs_refused_push_is_the_credentials():
    assert job_failure([APT, PUSH_REFUSED]).startswith("the registry refused kaniko's credentials in the Job "
                                                       "todo-backend-kaniko-r1 (error checking push permissions:")


def test_a_local_failure_has_no_colour_codes_in_its_line_or_detail():
    out = "\n".join([COLOUR, APT, "\x1b[36mINFO\x1b[0m[0073] E: open (13: Permission denied)", RUN_FAILED])
    error = kaniko.explain_failure(ToolFailed("kaniko executor failed (exit 3)", argv=["podman"], code=3, output=out),
                                   registry="127.0.0.1:5000", context=Path("backend"))
    assert error.message == f"kaniko failed: {RUN_FAILED}"
    assert "\x1b[" not in error.detail and "INFO[0072] RUN set -eu;" in error.detail


def _pod(deleting: bool, exit_code: int):
    from types import SimpleNamespace as NS
    term = NS(exit_code=exit_code, reason="Error")
    status = NS(container_statuses=[NS(name="pipeline", state=NS(terminated=term))])
    return NS(metadata=NS(deletion_timestamp="2026-12-03T14:00:00Z" if deleting else None), status=status), term


@pytest.mark.parametrize(("deleting", "exit_code", "killed"), [
    (True, 143, True),    # the pod deleted: its object stays for the Job's finalizer, its container SIGTERMed
    (True, 0, False),     # it had ended well before the deletion
    (False, 143, False),  # a pipeline that exited 143 itself, the pod not being deleted
])
def test_a_container_ended_by_its_pods_deletion_is_the_deletion(deleting, exit_code, killed):
    pod, term = _pod(deleting, exit_code)
    assert kubewatch.terminated_state(pod, "pipeline") is term
    assert kubewatch.killed_by_deletion(pod, term) is killed
