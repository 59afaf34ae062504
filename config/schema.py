"""OpenAPI postprocessing: what holds for every operation is declared once, here, so the
schema tells the truth about endpoints nobody annotated by hand (including endpoints
added later).

* Every operation documents its error answers with the one error shape
  (config/api.py): 400, 401, 403 and 404 everywhere; 409 on writes; 413 and 415 where
  there is a request body. A response a view already documents keeps its description
  and gains the shape if it had none.
* A request body refuses properties it does not declare (``additionalProperties:
  false``): config/serializers.py answers 400 for an unknown field.
"""

from __future__ import annotations

from typing import Any

ERROR_COMPONENT = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error answer of the API.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "status": {"type": "integer", "description": "the HTTP status"},
                "code": {
                    "type": "string",
                    "description": "stable machine-readable code (invalid, not_found, "
                    "permission_denied, not_authenticated, conflict ...)",
                },
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "description": "on 400 invalid: each bad field or parameter and why",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["status", "code", "message"],
            # A refusal carries what is possible instead (allowed_transitions, state ...).
            "additionalProperties": True,
        }
    },
    "required": ["error"],
}
WRITES = frozenset({"post", "put", "patch", "delete"})
DESCRIPTIONS = {
    "400": "Invalid input: `error.fields` names each bad field or query parameter.",
    "401": "Not signed in (no or an invalid token).",
    "403": "Signed in, but your role in this team does not allow this.",
    "404": "Not found (another team's object is not found either).",
    "409": "Not possible now (a refused transition lists the allowed ones; a stale version).",
    "413": "The request body is larger than the limit.",
    "415": "Not UTF-8 JSON (another media type or charset).",
}


def _error_codes(method: str, operation: dict[str, Any]) -> list[str]:
    codes = ["400", "401", "403", "404"]
    if method in WRITES:
        codes.append("409")
    if "requestBody" in operation:
        codes += ["413", "415"]
    return codes


def _closed_request_bodies(result: dict[str, Any], operation: dict[str, Any]) -> None:
    components = result.get("components", {}).get("schemas", {})
    for media in operation.get("requestBody", {}).get("content", {}).values():
        ref = media.get("schema", {}).get("$ref", "")
        schema = components.get(ref.rsplit("/", 1)[-1]) if ref else media.get("schema")
        if schema and schema.get("type") == "object" and "properties" in schema:
            schema["additionalProperties"] = False


def error_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in _error_codes(method, operation):
                response = responses.setdefault(code, {"description": DESCRIPTIONS[code]})
                if not response.get("description"):
                    response["description"] = DESCRIPTIONS[code]
                response.setdefault("content", content)
            _closed_request_bodies(result, operation)
    return result
