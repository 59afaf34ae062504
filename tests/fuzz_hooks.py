"""Schemathesis hooks for tests/test_api_fuzz.py, loaded by the schemathesis command
through ``SCHEMATHESIS_HOOKS`` (it runs in its own process: no Django here).

Path ids: most point at the objects the test seeded (``REZCOURSE_FUZZ_IDS``, a JSON
map of collection -> id), so the operations do real work; a quarter keep the
generated value (chosen from that value, so a run is reproducible from its seed).
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis

IDS: dict[str, int] = json.loads(os.environ.get("REZCOURSE_FUZZ_IDS", "{}"))


def _collection(path: str, name: str) -> str | None:
    segments = path.strip("/").split("/")
    placeholder = f"{{{name}}}"
    if name == "course_pk":
        return "courses"
    if name == "membership":
        return "notification-preferences"
    if placeholder in segments:
        return segments[segments.index(placeholder) - 1]
    return None


@schemathesis.hook
def map_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    if not path_parameters:
        return path_parameters
    for name, value in path_parameters.items():
        if isinstance(value, int) and value % 4 == 0:
            continue
        collection = _collection(context.operation.path, name)
        if collection in IDS:
            path_parameters[name] = IDS[collection]
    return path_parameters
