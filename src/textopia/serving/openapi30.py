"""The service's OpenAPI 3.1 document rewritten as OpenAPI 3.0, for the bundled Swagger UI.

FastAPI publishes OpenAPI 3.1 at ``/openapi.json``; the Swagger UI that ``swagger-ui-bundle``
ships (4.15.5, its latest release) reads Swagger 2.0 and OpenAPI 3.0 only, and shows "Unable to
render this definition" for anything else. The docs page therefore loads this rewrite, while
``/openapi.json`` stays the 3.1 document that clients and code generators read.

What differs between the two, for the documents pydantic and FastAPI write::

    3.1 (JSON Schema 2020-12)                 3.0
    anyOf: [X, {type: null}]                  X, nullable: true        ($ref X: allOf: [X], nullable)
    type: [X, "null"]                         type: X, nullable: true
    examples: [a, ...]  (in a schema)         example: a
    const: a                                  enum: [a]
    exclusiveMinimum: m                       minimum: m, exclusiveMinimum: true (and for maximum)
    info.summary                              the first paragraph of info.description
"""

from __future__ import annotations

import copy
from typing import Any

OPENAPI_30_VERSION = "3.0.3"

_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SUBSCHEMA = ("items", "not", "additionalProperties")


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null" and len(schema) == 1


def _schema_30(schema: Any) -> Any:
    """One JSON Schema 2020-12 schema (and its subschemas) as an OpenAPI 3.0 schema."""
    if not isinstance(schema, dict):
        return schema  # true / false
    out = dict(schema)
    for key in _SUBSCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_schema_30(s) for s in out[key]]
    for key in _SUBSCHEMA:
        if isinstance(out.get(key), dict):
            out[key] = _schema_30(out[key])
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: _schema_30(s) for name, s in out["properties"].items()}

    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and any(_is_null(s) for s in options):
            options = [s for s in options if not _is_null(s)]
            out["nullable"] = True
            if not options:
                del out[key]
            elif len(options) == 1 and "$ref" in options[0]:
                del out[key]
                out["allOf"] = options  # 3.0 ignores what stands beside a $ref
            elif len(options) == 1:
                del out[key]
                out = {**options[0], **out}
            else:
                out[key] = options
    if isinstance(out.get("type"), list):
        types = [t for t in out["type"] if t != "null"]
        if len(types) < len(out["type"]):
            out["nullable"] = True
        if len(types) == 1:
            out["type"] = types[0]
        else:
            del out["type"]
            out["anyOf"] = [{"type": t} for t in types]
    if isinstance(out.get("examples"), list):
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(exclusive)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[bound] = value
            out[exclusive] = True
    return out


def _operation_30(operation: dict[str, Any]) -> None:
    """Rewrite the schemas of one operation's parameters, request body and responses in place."""
    for parameter in operation.get("parameters", []):
        if "schema" in parameter:
            parameter["schema"] = _schema_30(parameter["schema"])
    bodies = [operation.get("requestBody", {}), *operation.get("responses", {}).values()]
    for body in bodies:
        for media in body.get("content", {}).values():
            if "schema" in media:
                media["schema"] = _schema_30(media["schema"])


def openapi_30(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 ``document`` as OpenAPI 3.0.3 (a new dict; the document is left as it was).

    Args:
        document: an OpenAPI 3.1 document, as ``FastAPI.openapi()`` returns it.

    Returns:
        The same operations and schemas in the forms OpenAPI 3.0 has (the module's table).
    """
    out = copy.deepcopy(document)
    out["openapi"] = OPENAPI_30_VERSION
    out.pop("webhooks", None)
    out.pop("jsonSchemaDialect", None)
    info = out.get("info", {})
    if "summary" in info:
        summary = info.pop("summary")
        info["description"] = f"{summary}\n\n{info['description']}" if info.get("description") else summary
    for path_item in out.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                _operation_30(operation)
    components = out.get("components", {})
    for name, schema in components.get("schemas", {}).items():
        components["schemas"][name] = _schema_30(schema)
    return out
