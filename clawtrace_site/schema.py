"""OpenAPI post-processing (drf-spectacular's POSTPROCESSING_HOOKS): every operation documents
the errors it can answer, each with the one error schema (`clawtrace_site.api`), so that a
client (and the schemathesis run in ingest/tests/test_schemathesis.py) can rely on the document
for every status.

The sync protocol's operations describe their own errors (`devices.protocol.error_responses`,
descriptions only); the others get `ERROR_STATUSES`. Either way the body is `Error`.
"""

from __future__ import annotations

from typing import Any

ERROR_COMPONENT = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error of every API: a stable code, a sentence, and the field at "
    "fault when there is one (docs/api.md).",
    "properties": {
        "error": {"type": "string", "description": "A stable code, e.g. `invalid_value`."},
        "detail": {"type": "string", "description": "One sentence for a human."},
        "field": {
            "type": "string",
            "description": "The dotted path of the field at fault, e.g. `events.3.content`.",
        },
    },
    "required": ["error", "detail"],
    "additionalProperties": False,
}
ERROR_STATUSES = {
    "400": "The request is not valid (`invalid_value` naming the `field`, `invalid_json`).",
    "401": "Not signed in.",
    "403": "Not signed in (`not_authenticated`), CSRF failed, or your role does not allow this.",
    "404": "No such organization or object (also when it exists in another organization).",
    "405": "Method not allowed.",
    "406": "Only JSON is answered.",
    "409": "The change would break a rule (the last owner, an existing member).",
    "413": "The request body is too large (`payload_too_large`).",
    "415": "Unsupported media type.",
    "429": "Too many requests (`throttled`); `Retry-After` says when to come back.",
    "500": "`server_error` (a bug; logged).",
    "503": "`database_unavailable`; `Retry-After` says when to come back.",
}


def error_responses_postprocess(result: dict[str, Any], generator, request, public) -> dict:
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}}
    for methods in result.get("paths", {}).values():
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            if not any(status.startswith(("4", "5")) for status in responses):
                for status, description in ERROR_STATUSES.items():
                    responses[status] = {"description": description}
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    response["content"] = content
    return result
