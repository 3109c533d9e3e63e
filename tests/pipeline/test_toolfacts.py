"""buildah's and skopeo's output, recorded from buildah 1.28 and skopeo 1.9 on Debian 12, read into facts."""

from pathlib import Path

from imagepipe.exec import tooloutput

RECORDED = Path(__file__).parent / "recorded"


def test_skopeo_inspect_digest():
    digest = tooloutput.skopeo_digest((RECORDED / "skopeo-inspect.json").read_text())
    assert digest is not None and digest.startswith("sha256:") and len(digest) == 71
    assert tooloutput.skopeo_digest("{}") is None


def test_skopeo_inspect_config():
    config = tooloutput.skopeo_config((RECORDED / "skopeo-inspect-config.json").read_text())
    assert config["User"] == "appuser" and config["Cmd"][0] == "uvicorn"


def test_buildah_version():
    assert tooloutput.buildah_version((RECORDED / "buildah-version.txt").read_text()) == "1.28.2"
    assert tooloutput.buildah_version("something else") == "unknown"
