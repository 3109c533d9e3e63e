"""The config normalisation that makes a commit's digest depend on content only."""

from __future__ import annotations

from imagepipe.builders.reproducible import normalise_config


def test_random_fields_are_blanked_and_the_rest_kept():
    config = {
        "container": "4e20513d82db",
        "created": "2026-11-26T06:15:59Z",
        "config": {"Hostname": "850028b77be7", "User": "appuser", "Healthcheck": {"Test": ["CMD", "x"]}},
        "container_config": {"Hostname": "850028b77be7", "Cmd": ["x"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:a"]},
        "parent": "sha256:516cac09f9ce",
        "history": [{"created": "t", "created_by": "COPY a"}, {"comment": "FROM 87d8c11b9bcf", "created": "t",
                                                               "created_by": "COPY b"}],
    }
    out = normalise_config(config)
    assert "container" not in out and "parent" not in out
    assert out["history"] == [{"created": "t", "created_by": "COPY a"}, {"created": "t", "created_by": "COPY b"}]
    assert out["config"] == {"Hostname": "", "User": "appuser", "Healthcheck": {"Test": ["CMD", "x"]}}
    assert out["container_config"] == {"Hostname": "", "Cmd": ["x"]}
    assert out["created"] == config["created"] and out["rootfs"] == config["rootfs"]
    other = dict(config, container="ffff", parent="sha256:1ff7", config=dict(config["config"], Hostname="abcd"),
                 history=[config["history"][0], dict(config["history"][1], comment="FROM 2d42ebbee7c1")])
    assert normalise_config(other) == out, "two builds differing only in random fields normalise equal"
