"""The Deployment derived from the image (no binaries): probes from HEALTHCHECK, the numeric user, the
securityContext the image supports; bad input refused with one line."""

from __future__ import annotations

import pytest

from imagepipe.errors import UsageError
from imagepipe.pipeline import deployment

S = 1_000_000_000
# the image's config as buildah and kaniko write it for build/Containerfile (docker format)
CONFIG = {"User": "appuser", "ExposedPorts": {"8000/tcp": {}},
          "Healthcheck": {"Test": ["CMD", "python", "/app/app/healthcheck.py"], "Interval": 15 * S, "Timeout": 3 * S,
                          "StartPeriod": 5 * S, "Retries": 3}}
IMAGE = "reg.example.com/todo-backend@sha256:" + "ab" * 32
PASSWD = "root:x:0:0:root:/root:/bin/bash\nappuser:x:1001:1001::/home/appuser:/usr/sbin/nologin\n"


def test_probes_follow_the_healthcheck():
    check = {"exec": {"command": ["python", "/app/app/healthcheck.py"]}, "timeoutSeconds": 3}
    assert deployment.probes(deployment.health_of(CONFIG)) == {
        # the start period (5 s) plus the 3 retries, probed every second
        "startupProbe": {**check, "periodSeconds": 1, "failureThreshold": 8},
        "readinessProbe": {**check, "periodSeconds": 15, "failureThreshold": 1},
        "livenessProbe": {**check, "periodSeconds": 15, "failureThreshold": 3},
    }


def test_a_shell_healthcheck_and_dockers_defaults():
    h = deployment.health_of({"Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost || exit 1"]}})
    assert h == deployment.Health(["/bin/sh", "-c", "curl -f localhost || exit 1"], 30.0, 30.0, 0.0, 3)


def test_the_manifest_runs_the_digest_as_the_images_user_hardened():
    listed = deployment.manifest(IMAGE, CONFIG, uid=1001, gid=1001, namespace="ci")
    dep, svc = listed["items"]
    assert (dep["kind"], svc["kind"]) == ("Deployment", "Service")
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 1001, "runAsGroup": 1001,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert container["ports"] == [{"name": "http", "containerPort": 8000}]
    assert container["envFrom"] == [{"secretRef": {"name": "todo-backend-env"}}]
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["automountServiceAccountToken"] is False and pod["terminationGracePeriodSeconds"] == 10
    assert dep["metadata"]["namespace"] == "ci" == svc["metadata"]["namespace"]
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http"}]


@pytest.mark.parametrize(("passwd", "user", "ids"), [(PASSWD, "appuser", (1001, 1001)), ("", "1001", (1001, 1001)),
                                                     ("", "1001:2000", (1001, 2000)), (PASSWD, "appuser:5", (1001, 5))])
def test_user_ids(passwd, user, ids):
    assert deployment.user_ids(passwd, user) == ids


@pytest.mark.parametrize(("kw", "message"), [
    ({"image": "reg.example.com/todo-backend:latest"}, "give the verified digest"),
    ({"uid": 0}, "runs as root"),
    ({"config": {**CONFIG, "Healthcheck": {"Test": ["NONE"]}}}, "has no HEALTHCHECK"),
    ({"config": {**CONFIG, "ExposedPorts": {}}}, "exposes no TCP port"),
])
def test_what_cannot_be_deployed_is_one_line(kw, message):
    args = {"image": IMAGE, "config": CONFIG, "uid": 1001, **kw}
    with pytest.raises(UsageError, match=message):
        deployment.manifest(args["image"], args["config"], uid=args["uid"], gid=1001)


def test_a_user_missing_from_passwd():
    with pytest.raises(UsageError, match="USER 'nobody' is not in its /etc/passwd"):
        deployment.user_ids(PASSWD, "nobody")
