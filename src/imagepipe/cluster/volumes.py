"""Volumes on this machine's one-node cluster: a directory of the host as a PersistentVolume bound to one
claim, for what the tests and the bench give their pods (the lookaside, a --pip-cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def host_path_volume(core: Any, name: str, store: Path, *, namespace: str, claim: str,
                     access: str = "ReadWriteOnce", size: str = "2Gi") -> None:
    """A PersistentVolume on `store` (made if missing), reserved for the claim `claim` in `namespace`."""
    store.mkdir(parents=True, exist_ok=True)
    core.create_persistent_volume({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
                                   "spec": {"capacity": {"storage": size}, "accessModes": [access],
                                            "hostPath": {"path": str(store), "type": "Directory"},
                                            "claimRef": {"namespace": namespace, "name": claim}}})


def host_path_claim(core: Any, name: str, store: Path, *, namespace: str, size: str = "2Gi") -> str:
    """A claim `name` and its volume of the same name on `store`; returns the claim's name."""
    host_path_volume(core, name, store, namespace=namespace, claim=name, size=size)
    core.create_namespaced_persistent_volume_claim(namespace, {
        "metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                                             "volumeName": name, "resources": {"requests": {"storage": size}}}})
    return name
