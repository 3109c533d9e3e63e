"""podmanfacts' parsers on `podman … inspect` output recorded from podman 4.3 on Debian 12 (our image, an
exited container of it, the default network): facts apart from the action that reads them."""

import json
from pathlib import Path

from imagepipe.host import podman

RECORDED = Path(__file__).parent / "recorded"


def recorded(kind: str) -> dict:
    return json.loads((RECORDED / f"podman-{kind}-inspect.json").read_text())[0]


def test_image_facts():
    facts = podman.parse_image(recorded("image"))
    assert facts.digest.startswith("sha256:") and len(facts.layers) == 4 and facts.size > 50_000_000
    assert facts.config["User"] == "appuser" and "8000/tcp" in facts.config["ExposedPorts"]
    # podman 4.3 reports the health check beside Config: it is folded in
    assert facts.config["Healthcheck"]["Test"][:2] == ["CMD", "python"]
    assert facts.config["Healthcheck"]["StartPeriod"] == 5_000_000_000


def test_container_facts():
    facts = podman.parse_container(recorded("container"))
    assert (facts.status, facts.pid, facts.health) == ("exited", 0, "starting")
    assert facts.exit_code != 0  # it was started without its settings


def test_network_facts():
    facts = podman.parse_network(recorded("network"))
    gateway, subnet = facts.subnets[0]
    assert subnet.endswith("/16") and gateway.startswith(subnet.rsplit(".", 2)[0])


def test_missing_fields_give_empty_facts():
    assert podman.parse_container({}) == podman.ContainerFacts("", 0, 0, "")
    assert podman.parse_image({}).layers == ()
