"""`bench --kaniko-trials`: kaniko's code-only rebuild with the registry cache under each option of the
fork that touches cached builds, each alone: the rebuild's seconds, where they go (the executor's own step
timings), and whether the tree still equals buildah's (parity's rules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imagepipe.builders import kaniko, parity
from imagepipe.exec import cmdline, runner
from imagepipe.host.profile import HostProfile
from imagepipe.paths import ROOT
from imagepipe.ui import output

TRIALS: dict[str, dict[str, str]] = {
    "as shipped (ci/kaniko.yaml)": {},
    "FF_KANIKO_SKIP_CACHED_STAGES": {"FF_KANIKO_SKIP_CACHED_STAGES": "true"},
    "FF_KANIKO_CACHE_LOOKAHEAD": {"FF_KANIKO_CACHE_LOOKAHEAD": "true"},
    "FF_KANIKO_SHARED_BASE_CACHE": {"FF_KANIKO_SHARED_BASE_CACHE": "true"},
    "--cache-copy-layers": {"--cache-copy-layers": "true"},
    "--compressed-caching=false": {"--compressed-caching": "false"},
    "--single-snapshot": {"--single-snapshot": "true"},
}
CHANGE = "\n# benchmark: a code-only change\n"


def run(profile: HostProfile, *, executor: str, context: Path, registry: str, work: Path, labels: dict[str, str],
        house: Path | None, buildah_ref: str) -> list[dict[str, Any]]:
    """`buildah_ref`: buildah's code-only rebuild of the same change, whose tree each rebuild must equal."""
    buildah_tree = parity.read_tree(buildah_ref)
    main = context / "app/main.py"
    original = main.read_text()
    out = []
    for n, (name, trial) in enumerate(TRIALS.items()):
        output.say(f"kaniko trial: {name}")

        def build(tag: str, trial: dict[str, str] = trial, n: int = n) -> kaniko.KanikoBuild:
            return kaniko.build_local(profile, executor=executor, context=context,
                                      containerfile=ROOT / "build/Containerfile",
                                      destination=f"{registry}/bench-trial:{tag}",
                                      cache_repo=f"{registry}/bench-trial/cache-{n}", registry=registry,
                                      work_dir=work, labels=labels, wheelhouse=house, trial=trial)

        main.write_text(original)
        cold = build(f"{n}-cold")
        main.write_text(original + CHANGE)
        try:
            again = build(f"{n}-rebuild")
        finally:
            main.write_text(original)
        ref = f"{registry}/bench-trial@{again.digest}"
        runner.run(cmdline.podman_pull(profile, ref), stage="bench", timeout=600)
        diffs = parity.explain(parity.compare_trees(buildah_tree, parity.read_tree(ref)))
        out.append({"trial": name, "cold_s": round(cold.seconds, 1), "rebuild_s": round(again.seconds, 1),
                    "steps": [s.as_dict() for s in again.steps],
                    "tree": "identical" if not diffs else
                    f"{len([d for d in diffs if d.rule is None])} unexplained of {len(diffs)} differences"})
    return out


def render(trials: list[dict[str, Any]]) -> str:
    lines = ["kaniko code-only rebuild under each option (cold, then the rebuild with its cache):"]
    for t in trials:
        steps = ", ".join(f"{s['instruction'][:28]} {s['seconds']:.1f}" for s in t["steps"] if s["seconds"] >= 0.5)
        lines.append(f"  {t['trial']:32} cold {t['cold_s']:5.1f} s, rebuild {t['rebuild_s']:5.1f} s, tree "
                     f"{t['tree']}; steps: {steps}")
    return "\n".join(lines)
