"""policy-controller built from ci/admission: the module pins v0.13.1 with the replace directives of its own
go.mod, the per-machine cache is keyed by what builds it, the Go set-up covers the module, and the image is
the binary and a CA bundle on nothing, as a numeric non-root user."""

from __future__ import annotations

import shutil

from imagepipe.cluster import admission, gotoolchain, images

# policy-controller v0.13.1's go.mod: a dependent module must repeat them (a dependency's are not applied)
UPSTREAM_REPLACES = (
    "replace github.com/golang/glog => github.com/jdolitsky/glog v0.0.0-20220729172235-78744e90d087",
    "k8s.io/code-generator => k8s.io/code-generator v0.29.4",
    "k8s.io/kube-openapi => k8s.io/kube-openapi v0.0.0-20231010175941-2dd684a91f00",
)


def test_the_module_pins_policy_controller_with_its_replace_directives_and_builds_its_webhook():
    assert admission.version() == "v0.13.1"
    assert f'_ "{admission.COMMAND}"' in (admission.MODULE / "tools.go").read_text()
    gomod = (admission.MODULE / "go.mod").read_text()
    assert gomod.startswith("module imagepipe.local/admission\n")
    for line in UPSTREAM_REPLACES:
        assert line in gomod, line
    assert "github.com/sigstore/policy-controller v0.13.1 h1:" in (admission.MODULE / "go.sum").read_text()


def test_the_cache_and_the_image_tag_are_keyed_by_version_and_by_go_mod_and_go_sum(tmp_path, monkeypatch):
    module = tmp_path / "admission"
    shutil.copytree(admission.MODULE, module)
    monkeypatch.setattr(admission, "MODULE", module)
    monkeypatch.setattr(admission, "CACHE", tmp_path / "cache")
    first, tag = admission.cache_dir(), admission.image_ref("10.244.3.1:5000")
    assert first.parent == tmp_path / "cache/admission" and first.name.startswith("v0.13.1-")
    assert tag == f"10.244.3.1:5000/imagepipe/policy-controller-webhook:{first.name}"
    assert admission.cached() is None
    first.mkdir(parents=True)
    (first / ".complete").write_text("v0.13.1\n")
    assert admission.cached() is not None and admission.ensure().path("webhook") == first / "webhook"
    for name in ("go.sum", "go.mod"):
        (module / name).write_text((module / name).read_text() + "\n")
        assert admission.cache_dir() != first, f"a changed {name} is a rebuild"
        assert admission.image_ref("r:5000") != f"r:5000/{admission.REPOSITORY}:{first.name}", "and a new image"


def test_the_go_set_up_covers_the_module():
    assert admission.MODULE / "go.mod" in gotoolchain.MODULES
    assert gotoolchain.required() >= gotoolchain.parse_version("1.24")


def test_the_image_is_the_static_binary_and_the_ca_bundle_on_nothing_as_a_numeric_user():
    lines = images.WEBHOOK_CONTAINERFILE.splitlines()
    assert lines[0] == "FROM scratch", "nothing to pull: no registry on the internet is asked"
    assert [ln for ln in lines if ln.startswith("COPY ")] == [
        "COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt", "COPY webhook /webhook"]
    assert "USER 65532:65532" in lines and lines[-1] == 'ENTRYPOINT ["/webhook"]'
    assert not [ln for ln in lines if ln.startswith("RUN ")], "an empty base runs nothing"
