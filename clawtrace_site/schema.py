"""OpenAPI post-processing (drf-spectacular's POSTPROCESSING_HOOKS): every operation documents
the errors it can answer, in the project's error shape, so that a client (and the schemathesis
run in ingest/tests/test_schemathesis.py) can rely on the document for every status.

The sync protocol's operations document their own errors (their shape is the contract's,
`devices.protocol.ErrorSerializer`); they are left as they are.
"""

from __future__ import annotations

from typing import Any

ERROR_COMPONENT = "ProjectError"
ERROR_STATUSES = {
    "400": "The request is not valid (`invalid_input`, `parse_error`).",
    "401": "Not signed in.",
    "403": "Not signed in, CSRF failed, or your role does not allow this.",
    "404": "No such organization or object (also when it exists in another organization).",
    "405": "Method not allowed.",
    "406": "Only JSON is answered.",
    "409": "The change would break a rule (the last owner, an existing member).",
    "413": "The request body is too large.",
    "415": "Unsupported media type.",
    "429": "Too many requests.",
}


def error_responses_postprocess(result: dict[str, Any], generator, request, public) -> dict:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_COMPONENT] = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "fields": {"type": "object"},
                },
                "required": ["code", "message"],
            }
        },
        "required": ["error"],
    }
    reference = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for methods in result.get("paths", {}).values():
        for operation in methods.values():
            responses = operation.get("responses", {})
            if any(status.startswith(("4", "5")) for status in responses):
                continue  # documents its own errors (the sync protocol)
            for status, description in ERROR_STATUSES.items():
                responses[status] = {
                    "description": description,
                    "content": {"application/json": {"schema": reference}},
                }
    return result
