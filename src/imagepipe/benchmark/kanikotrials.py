"""`bench --kaniko-trials`: kaniko's cold build, fully cached build and code-only rebuild with the registry
cache under the shipped profile with each of its cache options taken out (and the options it leaves off put in): the
seconds, where the rebuild's go (the executor's own step timings), and whether the tree still equals
buildah's (parity's rules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imagepipe.builders import kaniko, parity
from imagepipe.exec import cmdline, runner
from imagepipe.host.profile import HostProfile
from imagepipe.paths import ROOT
from imagepipe.ui import output

# The shipped profile (ci/kaniko.yaml: the fork's flags that become default in v1.29.0, with
# --cache-copy-layers) is the reference; each trial takes one of its cache flags out, or adds an option the
# profile leaves off, so a missed target shows what every option gives on this machine.
PROFILE_CACHE_FLAGS = ("FF_KANIKO_SKIP_CACHED_STAGES", "FF_KANIKO_INFER_CROSS_STAGE_CACHE_KEY",
                       "FF_KANIKO_CACHE_LOOKAHEAD", "FF_KANIKO_ROLLING_CACHE_KEY", "FF_KANIKO_SHARED_BASE_CACHE",
                       "FF_KANIKO_RESOLVE_CACHE_KEY")
TRIALS: dict[str, dict[str, str]] = {
    "as shipped (the v1.29 profile)": {},
    # v1.28's cached builds: the profile's cache flags off (the whiteout flag stays: the tree needs it)
    "the profile's cache flags all off": {**{f: "false" for f in PROFILE_CACHE_FLAGS}, "--cache-copy-layers": "false"},
    **{f"without {f}": {f: "false"} for f in PROFILE_CACHE_FLAGS},
    "without --cache-copy-layers": {"--cache-copy-layers": "false"},
    "with --compressed-caching=false": {"--compressed-caching": "false"},
    "with --single-snapshot": {"--single-snapshot": "true"},
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
        cached = build(f"{n}-cached")  # nothing changed
        main.write_text(original + CHANGE)
        try:
            again = build(f"{n}-rebuild")
        finally:
            main.write_text(original)
        ref = f"{registry}/bench-trial@{again.digest}"
        runner.run(cmdline.podman_pull(profile, ref), stage="bench", timeout=600)
        diffs = parity.explain(parity.compare_trees(buildah_tree, parity.read_tree(ref)))
        out.append({"trial": name, "cold_s": round(cold.seconds, 1), "cached_s": round(cached.seconds, 1),
                    "cached_same_digest": cached.digest == cold.digest, "rebuild_s": round(again.seconds, 1),
                    "steps": [s.as_dict() for s in again.steps],
                    "tree": "identical" if not diffs else
                    f"{len([d for d in diffs if d.rule is None])} unexplained of {len(diffs)} differences"})
    return out


def render(trials: list[dict[str, Any]]) -> str:
    lines = ["kaniko under each option (cold; fully cached, same digest?; code-only rebuild, tree against buildah's):"]
    for t in trials:
        steps = ", ".join(f"{s['instruction'][:28]} {s['seconds']:.1f}" for s in t["steps"] if s["seconds"] >= 0.5)
        same = "same digest" if t["cached_same_digest"] else "OTHER DIGEST"
        lines.append(f"  {t['trial']:48} cold {t['cold_s']:5.1f} s, cached {t['cached_s']:5.1f} s ({same}), "
                     f"code-only {t['rebuild_s']:5.1f} s, tree {t['tree']}; steps: {steps}")
    return "\n".join(lines)
