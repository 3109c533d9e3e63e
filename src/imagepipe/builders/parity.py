"""`pipeline.py parity`: do buildah and kaniko build the same image from the same Containerfile?

Compared: the config fields a runtime acts on, the whole file tree (filetree.Entry per path) and the
layers (their members and uncompressed bytes). A difference passes only when a named rule explains it;
any other fails the command.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagepipe.exec import cmdline, runner, tooloutput
from imagepipe.image import filetree, mount
from imagepipe.ui import tables

CONFIG_FIELDS = ("User", "ExposedPorts", "Healthcheck", "Cmd", "Entrypoint", "Env", "WorkingDir", "Labels")


@dataclass
class Difference:
    kind: str  # config | tree | layer
    where: str  # the field, path or layer index
    buildah: Any
    kaniko: Any
    rule: str | None = None  # the rule that explains it; None fails parity

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "where": self.where, "buildah": self.buildah, "kaniko": self.kaniko,
                "explained_by": self.rule}


@dataclass(frozen=True)
class Rule:
    name: str
    why: str
    applies: Callable[[Difference], bool]


def _label_only_builder_stamp(d: Difference) -> bool:
    if d.kind != "config" or d.where != "Labels":
        return False
    a, b = dict(d.buildah or {}), dict(d.kaniko or {})
    a.pop("io.buildah.version", None)
    return a == b


def _same_members(d: Difference) -> bool:
    return (d.kind == "layer" and d.buildah is not None and d.kaniko is not None
            and d.buildah["fingerprint"] == d.kaniko["fingerprint"])


def _same_members_same_links(d: Difference) -> bool:
    return _same_members(d) and d.buildah["hardlinks"] == d.kaniko["hardlinks"]


def _hardlinks_copied(d: Difference) -> bool:
    return _same_members(d) and d.kaniko["hardlinks"] < d.buildah["hardlinks"]


def _empty_metadata_layer(d: Difference) -> bool:
    return d.kind == "layer" and (d.buildah is None or d.buildah.get("members") == 0) and \
        d.kaniko is not None and d.kaniko.get("members") == 0


RULES = (
    Rule("builder-version-label", "buildah stamps its own version as the label io.buildah.version; kaniko "
         "adds no label", _label_only_builder_stamp),
    Rule("hardlinks-as-copies", "the same members, but kaniko writes a hard link as a second copy of the "
         "file (buildah keeps the link): the same tree, the file's bytes twice in the layer",
         _hardlinks_copied),
    Rule("tar-encoding", "the same members (name, type, size, mode, owner, link) in the same layer, written "
         "with each builder's own tar headers and file times, so the uncompressed bytes differ",
         _same_members_same_links),
    Rule("empty-layer", "kaniko (with --cache) records an empty layer for each instruction that changes no "
         "file (ENV, WORKDIR on an existing directory, USER, EXPOSE, HEALTHCHECK, CMD); buildah records none",
         _empty_metadata_layer),
)


def explain(diffs: list[Difference]) -> list[Difference]:
    for d in diffs:
        d.rule = next((r.name for r in RULES if r.applies(d)), None)
    return diffs


# --- the three comparisons (pure) ----------------------------------------------------------------------


def compare_configs(a: dict[str, Any], b: dict[str, Any]) -> list[Difference]:
    return [Difference("config", key, a.get(key), b.get(key)) for key in CONFIG_FIELDS
            if (a.get(key) or None) != (b.get(key) or None)]


def compare_trees(a: dict[str, filetree.Entry], b: dict[str, filetree.Entry]) -> list[Difference]:
    out = []
    for path in sorted(set(a) | set(b)):
        ea, eb = a.get(path), b.get(path)
        if ea != eb:
            out.append(Difference("tree", path, ea.as_dict() if ea else None, eb.as_dict() if eb else None))
    return out


def compare_layers(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[Difference]:
    """Layers are matched in order after dropping kaniko's empty metadata layers (reported, by rule)."""
    out = []
    b_full = []
    for i, layer in enumerate(b):
        if layer["members"] == 0 and not any(x["members"] == 0 for x in a):
            out.append(Difference("layer", f"kaniko #{i}", None, layer))
        else:
            b_full.append(layer)
    for i in range(max(len(a), len(b_full))):
        la = a[i] if i < len(a) else None
        lb = b_full[i] if i < len(b_full) else None
        if la is None or lb is None or la["bytes"] != lb["bytes"] or la["fingerprint"] != lb["fingerprint"]:
            out.append(Difference("layer", f"#{i}", la, lb))
    return out


# --- reading images (tools) ----------------------------------------------------------------------------


def layer_summary(blob: Path) -> dict[str, Any]:
    """Uncompressed bytes of a layer, its hard links, and a fingerprint of its members (what it adds,
    deletes or replaces). A hard link counts as the file it links to, so a builder that writes a copy
    instead has the same fingerprint (and the hardlinks count tells them apart)."""
    with gzip.open(blob) as raw:
        size = 0
        while chunk := raw.read(1 << 20):
            size += len(chunk)
    with tarfile.open(blob, "r:*") as tar:
        entries = tar.getmembers()
    by_name = {m.name: m for m in entries}
    members, hardlinks = [], 0
    for m in entries:
        kind, length = m.type.decode(), (m.size if m.isfile() else 0)
        if m.islnk():
            hardlinks += 1
            target = by_name.get(m.linkname)
            kind, length = tarfile.REGTYPE.decode(), (target.size if target is not None else -1)
        link = m.linkname if m.issym() else ""
        members.append((m.name.strip("./").rstrip("/"), "0" if kind in ("0", "\x00") else kind, length,
                        m.mode & 0o7777, m.uid, m.gid, link))
    members.sort()
    return {"bytes": size, "members": len(members), "hardlinks": hardlinks,
            "fingerprint": hashlib.sha256(json.dumps(members).encode()).hexdigest()[:16]}


def read_layers(ref: str, auth: cmdline.ToolAuth | None = None) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="imagepipe-parity-") as tmp:
        runner.run(cmdline.skopeo_to_dir(ref, Path(tmp), auth=auth), stage="parity", timeout=600,
                   what="reading layers")
        manifest = json.loads((Path(tmp) / "manifest.json").read_text())
        return [layer_summary(Path(tmp) / layer["digest"].split(":", 1)[1]) for layer in manifest["layers"]]


def read_config(ref: str, auth: cmdline.ToolAuth | None = None) -> dict[str, Any]:
    return tooloutput.skopeo_config(runner.run(cmdline.skopeo_inspect(ref, config=True, auth=auth),
                                              stage="parity").stdout)


def read_tree(ref: str) -> dict[str, filetree.Entry]:
    with mount.mounted(ref) as root:
        return filetree.tree(root)


@dataclass
class ParityReport:
    buildah: str
    kaniko: str
    differences: list[Difference] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def unexplained(self) -> list[Difference]:
        return [d for d in self.differences if d.rule is None]

    @property
    def passed(self) -> bool:
        return not self.unexplained

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "buildah": self.buildah, "kaniko": self.kaniko, "counts": self.counts,
                "build_seconds": {k: round(v, 1) for k, v in self.seconds.items()},
                "rules": {r.name: r.why for r in RULES},
                "differences": [d.as_dict() for d in self.differences]}


def compare(buildah_ref: str, kaniko_ref: str, auth: cmdline.ToolAuth | None = None) -> ParityReport:
    """Both references are pulled by the caller (present in local storage and in the registry, which
    `auth` reaches)."""
    report = ParityReport(buildah_ref, kaniko_ref)
    ta, tb = read_tree(buildah_ref), read_tree(kaniko_ref)
    la, lb = read_layers(buildah_ref, auth), read_layers(kaniko_ref, auth)
    report.counts = {"paths": len(ta), "paths_kaniko": len(tb), "layers": len(la), "layers_kaniko": len(lb)}
    report.differences = explain([*compare_configs(read_config(buildah_ref, auth), read_config(kaniko_ref, auth)),
                                  *compare_trees(ta, tb), *compare_layers(la, lb)])
    return report


def render(report: ParityReport) -> str:
    lines = [f"buildah {report.buildah}", f"kaniko  {report.kaniko}",
             f"{report.counts.get('paths', 0)} paths and {report.counts.get('layers', 0)} layers compared "
             f"(kaniko: {report.counts.get('paths_kaniko', 0)} paths, {report.counts.get('layers_kaniko', 0)} "
             "layers)", ""]
    rows = [(d.kind, d.where, _short(d.buildah), _short(d.kaniko), d.rule or "UNEXPLAINED")
            for d in report.differences]
    if not rows:
        lines.append("no differences: identical configs, file trees and layers")
    else:
        lines.append(tables.render(("kind", "where", "buildah", "kaniko", "explained by"), rows, max_width=48))
    used = sorted({d.rule for d in report.differences if d.rule})
    for name in used:
        lines.append(f"  {name}: {next(r.why for r in RULES if r.name == name)}")
    n = len(report.unexplained)
    lines.append("PARITY: PASSED" if report.passed else f"PARITY: FAILED ({n} unexplained difference{'s' * (n != 1)})")
    return "\n".join(lines)


def _short(value: Any) -> str:
    if value is None:
        return "-"
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 48 else text[:47] + "…"
