"""A manifest through the official Kubernetes client's models and back: required fields are enforced by
the models, and a misspelt or unknown key, which they drop, shows as a difference from the file."""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client import ApiClient


class _Response:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = json.dumps(data)


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def round_trip(manifest: dict[str, Any], kind: str) -> tuple[Any, Any]:
    """(the model object, the manifest as the models give it back)."""
    api = ApiClient()
    obj = api.deserialize(_Response(manifest), kind)
    return obj, _prune(api.sanitize_for_serialization(obj))
