"""The config normalisation that makes a commit's digest depend on content only."""

from __future__ import annotations

from imagepipe.reproducible import normalise_config


def test_random_fields_are_blanked_and_the_rest_kept():
    config = {
        "container": "4e20513d82db",
        "created": "2026-11-26T06:15:59Z",
        "config": {"Hostname": "850028b77be7", "User": "appuser", "Healthcheck": {"Test": ["CMD", "x"]}},
        "container_config": {"Hostname": "850028b77be7", "Cmd": ["x"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:a"]},
    }
    out = normalise_config(config)
    assert "container" not in out
    assert out["config"] == {"Hostname": "", "User": "appuser", "Healthcheck": {"Test": ["CMD", "x"]}}
    assert out["container_config"] == {"Hostname": "", "Cmd": ["x"]}
    assert out["created"] == config["created"] and out["rootfs"] == config["rootfs"]
    other = dict(config, container="ffff", config=dict(config["config"], Hostname="abcd"))
    assert normalise_config(other) == out, "two builds differing only in random fields normalise equal"
