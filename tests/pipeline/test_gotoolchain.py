"""The Go the set-up needs: versions compared as Go orders them, the pins cover what our go.mod files need."""

from __future__ import annotations

import pytest

from imagepipe.cluster import gotoolchain


@pytest.mark.parametrize(("text", "version"), [("go1.26.8", (1, 26, 8)), ("1.24.0", (1, 24, 0)), ("1.22", (1, 22, 0)),
                                               ("go1.19.8\n", (1, 19, 8))])
def test_versions(text, version):
    assert gotoolchain.parse_version(text) == version


def test_debians_go_is_too_old_and_the_pins_are_new_enough():
    assert gotoolchain.required() == (1, 26, 8), "ci/interop/go.mod's go directive"
    assert gotoolchain.parse_version("go1.19.8") < gotoolchain.required()
    pins = gotoolchain.pinned()
    assert set(pins) == {"amd64", "arm64"}
    for arch, (version, h1) in pins.items():
        assert version == f"v0.0.1-go1.26.8.linux-{arch}" and h1.startswith("h1:")
