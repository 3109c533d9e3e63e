"""`pipeline.py bench`: measure our Containerfile against a naive baseline built in the same run.

Figures: image size, cold build time, code-only rebuild time and bytes pushed, start -> first 200, /health
p99, the tasks API under load (wrk), build reproducibility, the verify stage's duration and what cosign's
signature and attestations of the verified digest cost beside it (cosignbench). Timings on
shared machines vary: start-up is the median of several runs, and ratios compare figures of the same run.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from imagepipe.benchmark import cosignbench, kanikotrials, platformbench, servicebench
from imagepipe.benchmark.figures import Metric, metrics
from imagepipe.benchmark.harness import Harness, Variant
from imagepipe.builders import kaniko, kanikojob, reproducible, wheels
from imagepipe.checks import imagefs
from imagepipe.checks.types import CONTAINER_HOST, VerifyOptions, VerifyResult
from imagepipe.checks.verifier import Verifier
from imagepipe.errors import PipelineError
from imagepipe.exec import cmdline, runner
from imagepipe.host import podman
from imagepipe.image import mount
from imagepipe.image.containerfile import BASE_REF
from imagepipe.paths import ROOT
from imagepipe.registry.embedded import EmbeddedRegistry
from imagepipe.services import containernet, postgres, standins
from imagepipe.services.postgres import TempPostgres
from imagepipe.ui import output


class Bench(Harness):
    def kaniko(self, f: dict[str, Any], house: Path) -> None:
        """kaniko over the same tree, next to buildah's figures: a cold build (empty cache repository), a
        code-only rebuild with the cache, and a second clean build for reproducibility."""
        executor = kanikojob.executor_image(kanikojob.load()) if self.kaniko_image is None else self.kaniko_image
        if not podman.image_exists(self.profile, executor):
            f["kaniko"] = None
            return
        kaniko.seed_mirror(self.profile, self.registry_addr)
        context, k = self.work / "ctx-ours", dict[str, Any]()

        def build(tag: str, cache: str) -> tuple[float, str]:
            b = kaniko.build_local(self.profile, executor=executor, context=context,
                                   containerfile=ROOT / "build/Containerfile",
                                   destination=f"{self.registry_addr}/bench-kaniko:{tag}",
                                   cache_repo=f"{self.registry_addr}/bench-kaniko/{cache}",
                                   registry=self.registry_addr, work_dir=self.work, labels=self.labels,
                                   wheelhouse=house)
            k.setdefault("steps", [s.as_dict() for s in b.steps])
            return b.seconds, b.digest

        output.say("kaniko: cold build")
        k["cold_build_s"], k["digest"] = build("1", "cache-a")
        ref = f"{self.registry_addr}/bench-kaniko@{k['digest']}"
        runner.run(cmdline.podman_pull(self.profile, ref), stage="bench", timeout=600)
        k["size_mb"] = self.image_facts(ref).size / 1e6
        output.say("kaniko: fully cached rebuild (nothing changed)")
        k["cached_s"], cached = build("1c", "cache-a")
        k["cached_same_digest"] = cached == k["digest"]
        main = context / "app/main.py"
        original = main.read_text()
        main.write_text(original + "\n# benchmark: a code-only change\n")
        output.say("kaniko: code-only rebuild")
        try:
            k["rebuild_s"], _ = build("2", "cache-a")
        finally:
            main.write_text(original)
        output.say("kaniko: second clean build (reproducibility)")
        _, again = build("repro", "cache-b")
        k["reproducible"] = again == k["digest"]
        f["kaniko"] = k
        if self.kaniko_trials:
            self.trials = kanikotrials.run(self.profile, executor=executor, context=context,
                                           registry=self.registry_addr, work=self.work, labels=self.labels,
                                           house=house, buildah_ref="localhost/bench-ours:2")

    def cluster(self, f: dict[str, Any]) -> None:
        from imagepipe.benchmark import clusterbench

        executor = kanikojob.executor_image(kanikojob.load()) if self.kaniko_image is None else self.kaniko_image
        try:
            f["cluster"] = clusterbench.measure(self.work, executor)
        except PipelineError as e:  # the rest of the run's figures are still printed and kept
            f["cluster"] = {"error": str(e)}

    # --- the run -------------------------------------------------------------------------------------

    def run(self) -> list[Metric]:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        registry = EmbeddedRegistry(self.work, self.registry_addr)
        gateway, subnet = containernet.bridge(self.profile, BASE_REF, labels=self.labels)
        pg = postgres.for_containers(gateway, subnet)
        openai = standins.FakeOpenAI(host=gateway)  # a chat turn's memory is measured
        try:
            registry.ensure_running()
            pg.start()
            return self._run(pg, f"http://{CONTAINER_HOST}:{openai.port}/v1")
        finally:
            openai.server.shutdown()
            pg.stop()
            registry.stop()

    def measure(self, variant: Variant, *, house: Path | None, dsn: str, commit: bool) -> None:
        """One Containerfile's figures: cold build, size, pushes, code-only rebuild, start-up and load.
        `commit`: normalised as the pipeline's build stage does for a clean commit (ours)."""
        f = variant.figures
        context = self.work / f"ctx-{variant.name}"
        shutil.copytree(ROOT / "backend", context, ignore=shutil.ignore_patterns("__pycache__"))
        image = f"localhost/bench-{variant.name}:1"
        output.say(f"{variant.name}: cold build")
        started = time.time()
        f["cold_build_s"] = self.build(variant, context, image, cold=True,
                                       wheelhouse=house,
                                       commit_build=commit, steps_key="steps")
        f["cold_build_window"] = (started, time.time())  # the provenance cosign attests (cosignbench)
        f["size_mb"] = self.image_facts(image).size / 1e6
        with mount.mounted(image) as root:
            f["size_by_dir_mb"] = {k: round(v / 1e6, 1) for k, v in list(imagefs.size_by_top(root).items())[:8]}
        f["cold_layers"] = self.layers(image)
        f["first_push_mb"], f["digest"] = self.push(image, f"bench-{variant.name}:1")
        f["first_push_mb"] /= 1e6
        # The everyday state: the unchanged tree built once more with the cache (a --no-cache build does
        # not register its layers for cache lookups), then a code-only change rebuilt and pushed.
        self.build(variant, context, image, cold=False, wheelhouse=house)
        if commit:
            reproducible.rewrite(image, work_dir=self.work)
        # ... and pushed, as the previous commit's image is: the code change is pushed next to it. (A
        # --no-cache build's layers come from another cache lineage, so they are not what a cached
        # rebuild reuses.)
        self.push(image, f"bench-{variant.name}:warm")
        main = context / "app/main.py"
        main.write_text(main.read_text() + "\n# benchmark: a code-only change\n")
        output.say(f"{variant.name}: code-only rebuild and push")
        f["rebuild_s"] = self.build(variant, context, f"localhost/bench-{variant.name}:2", cold=False,
                                    wheelhouse=house, steps_key="steps_rebuild")
        if commit:  # a committed change is normalised like the first push was (not timed)
            reproducible.rewrite(f"localhost/bench-{variant.name}:2", work_dir=self.work)
        pushed, _ = self.push(f"localhost/bench-{variant.name}:2", f"bench-{variant.name}:2")
        f["rebuild_push_kb"] = pushed / 1e3
        f["push_zstd_mb"] = self.compressed_bytes(image, "zstd") / 1e6

    def _run(self, pg: TempPostgres, openai_url: str) -> list[Metric]:
        requirements = ROOT / "backend/requirements.txt"
        house = wheels.wheelhouse(requirements)  # one-time cost per machine, not part of the cold build
        # Cold means cold: drop buildah's cache images, or a later cached rebuild could pick layers from an
        # older build (other timestamps) and the push figure would measure that, not a code change.
        # The previous run's tagged images are removed first: their layers would otherwise stay cache candidates.
        old = runner.run(cmdline.buildah_images(), stage="bench").stdout.split()
        old = [name for name in old if name.startswith("localhost/bench-")]
        if old:
            runner.run(cmdline.buildah_rmi(*old), stage="bench", ok_codes=(0, 1, 125), timeout=600)
        runner.run(cmdline.buildah_rmi(prune=True), stage="bench", ok_codes=(0, 1, 125), timeout=600)
        ours = Variant("ours", ROOT / "build/Containerfile")
        naive = Variant("baseline", ROOT / "build/bench/Containerfile.naive")
        dsn = pg.dsn(host=CONTAINER_HOST)
        for variant in (ours, naive):
            self.measure(variant, house=house if variant is ours else None, dsn=dsn, commit=variant is ours)
        images = {"ours": "localhost/bench-ours:1", "baseline": "localhost/bench-baseline:1"}
        service = servicebench.measure(self, images, dsn=dsn, openai_url=openai_url, rounds=self.runs)
        ours.figures.update(service["ours"])
        naive.figures.update(service["baseline"])

        output.say("ours: cold build from PyPI (no wheelhouse: psycopg-c compiled)")
        ours.figures["cold_build_pypi_s"] = self.build(ours, self.work / "ctx-ours", "localhost/bench-ours:pypi",
                                                       cold=True, wheelhouse=None, steps_key="steps_pypi")

        output.say("ours: second clean build (reproducibility)")
        # The code-only change above went into ctx-ours; undo it, then a clean build must give the same digest.
        main = self.work / "ctx-ours/app/main.py"
        main.write_text(main.read_text().replace("\n# benchmark: a code-only change\n", ""))
        self.build(ours, self.work / "ctx-ours", "localhost/bench-ours:repro", cold=True, wheelhouse=house,
                   commit_build=True)
        _, repro_digest = self.push("localhost/bench-ours:repro", "bench-ours:repro")
        ours.figures["reproducible"] = repro_digest == ours.figures["digest"]
        # layers by content (diff ids) against the first clean build's; the pushed digest also depends on how
        # the registry push compressed them, which a push of another lineage in between can change
        ours.figures["same_layers"] = self.layers("localhost/bench-ours:repro") == ours.figures["cold_layers"]

        self.kaniko(ours.figures, house)
        self.cluster(ours.figures)

        output.say("ours: verify stage (once to warm the page cache after the builds' writes, then measured)")
        os.sync()
        opts = VerifyOptions(state_dir=self.state_dir, labels=self.labels, vuln_db=self.vuln_db,
                             vuln_db_max_age_days=self.vuln_db_max_age)
        Verifier(self.profile, f"{self.registry_addr}/bench-ours@{ours.figures['digest']}", opts).run()
        verify = Verifier(self.profile, f"{self.registry_addr}/bench-ours@{ours.figures['digest']}", opts).run()
        ours.figures["verify_s"] = verify.seconds
        ours.figures["verify_passed"] = verify.passed
        output.say("ours: cosign signs the verified digest and makes promote's three attestations (timed)")
        ours.figures["cosign"] = cosignbench.measure(
            self.profile, self.state_dir, self.work, image=f"{self.registry_addr}/bench-ours",
            digest=ours.figures["digest"], verify=verify, built=ours.figures["cold_build_window"])
        rows = [platformbench.measure(self, p, dsn) for p in self.platforms if p.emulated]
        self.details = details(ours.figures, verify, rows)
        return [*metrics(ours.figures, naive.figures), *platformbench.platform_metrics(rows, ours.figures)]


def details(o: dict[str, Any], verify: VerifyResult, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Where size and time go: ours by directory, each build's steps, verify's checks and phases, and each
    other platform's size, steps and pieces."""
    k = o.get("kaniko") or {}
    return {
        **({"platforms": {r["platform"]: {"size_by_dir_mb": r["size_by_dir_mb"], "steps": r["steps"],
                                          "pieces_s": r["pieces_s"]} for r in rows}} if rows else {}),
        "size_by_dir_mb": o["size_by_dir_mb"],
        "steps": {"buildah cold (wheelhouse)": o["steps"], "buildah cold (PyPI)": o["steps_pypi"],
                  "buildah code-only rebuild": o["steps_rebuild"],
                  **({"kaniko cold": k["steps"]} if k.get("steps") else {})},
        "verify_checks_s": {c.id: c.seconds for c in verify.checks},
        "verify_phases": verify.phases,
    }
