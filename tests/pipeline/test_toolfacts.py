"""buildah's and skopeo's output, recorded from buildah 1.28 and skopeo 1.9 on Debian 12, read into facts."""

from pathlib import Path

from imagepipe import toolfacts

RECORDED = Path(__file__).parent / "recorded"


def test_skopeo_inspect_digest():
    digest = toolfacts.skopeo_digest((RECORDED / "skopeo-inspect.json").read_text())
    assert digest is not None and digest.startswith("sha256:") and len(digest) == 71
    assert toolfacts.skopeo_digest("{}") is None


def test_skopeo_inspect_config():
    config = toolfacts.skopeo_config((RECORDED / "skopeo-inspect-config.json").read_text())
    assert config["User"] == "appuser" and config["Cmd"][0] == "uvicorn"


def test_buildah_version():
    assert toolfacts.buildah_version((RECORDED / "buildah-version.txt").read_text()) == "1.28.2"
    assert toolfacts.buildah_version("something else") == "unknown"
