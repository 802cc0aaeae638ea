"""The API's reference at /docs as one plain HTML page, built from the server's OpenAPI schema.

FastAPI's Swagger UI and ReDoc load their scripts from a CDN, so on a closed intranet /docs was
blank. This page needs nothing from outside: every route with its request fields (type, limits,
description) and its responses, read from the same schema as /openapi.json, which stays the
machine-readable contract.
"""

from __future__ import annotations

import html
from typing import Any

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 60em; margin: 0 auto;
  padding: 1em 1.2em 3em; color: #1f2937; line-height: 1.45; }
header { border-bottom: 3px solid #f97316; margin-bottom: 1em; }
h1 { font-size: 1.6em; margin: .4em 0; } h2 { font-size: 1.2em; margin-top: 1.6em; }
.route { border: 1px solid #e5e7eb; border-radius: 8px; padding: .6em 1em; margin: 1em 0; }
.method { display: inline-block; min-width: 3.6em; text-align: center; font-weight: 700; border-radius: 4px;
  padding: 0 .4em; margin-right: .5em; color: #fff; background: #0072B2; }
.method.post { background: #f97316; }
code { background: #f3f4f6; padding: 0 .3em; border-radius: 3px; }
table { border-collapse: collapse; width: 100%; font-size: .95em; }
th, td { text-align: left; vertical-align: top; border-top: 1px solid #e5e7eb; padding: .3em .5em; }
"""


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        return dict(spec.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[1], {}))
    return schema


def _type(schema: dict[str, Any], spec: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " or ".join(_type(option, spec) for option in schema["anyOf"])
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[1]
    if "enum" in schema:
        return "one of " + ", ".join(repr(value) for value in schema["enum"])
    if schema.get("type") == "array":
        return "list of " + _type(schema.get("items") or {}, spec)
    return str(schema.get("type", "any"))


def _limits(schema: dict[str, Any]) -> str:
    names = {
        "minLength": "at least {} characters",
        "maxLength": "at most {} characters",
        "minimum": "≥ {}",
        "maximum": "≤ {}",
        "maxItems": "at most {} items",
    }
    found = [text.format(schema[key]) for key, text in names.items() if key in schema]
    for option in schema.get("anyOf") or []:
        found += [text.format(option[key]) for key, text in names.items() if key in option]
    if "default" in schema:
        found.append(f"default {schema['default']!r}")
    return "; ".join(found)


def _fields(schema: dict[str, Any], spec: dict[str, Any]) -> str:
    schema = _resolve(schema, spec)
    required = set(schema.get("required") or [])
    rows = "".join(
        f"<tr><td><code>{html.escape(name)}</code>{' (required)' if name in required else ''}</td>"
        f"<td>{html.escape(_type(field, spec))}</td><td>{html.escape(_limits(field))}</td>"
        f"<td>{html.escape(str(field.get('description', '')))}</td></tr>"
        for name, field in (schema.get("properties") or {}).items()
    )
    if not rows:
        return ""
    return f"<table><tr><th>Field</th><th>Type</th><th>Limits</th><th>Meaning</th></tr>{rows}</table>"


def docs_html(spec: dict[str, Any], openapi_url: str) -> str:
    """The reference page of an OpenAPI schema (FastAPI's `app.openapi()`)."""
    info = spec.get("info") or {}
    routes = []
    for path, methods in (spec.get("paths") or {}).items():
        for method, operation in methods.items():
            body = ((operation.get("requestBody") or {}).get("content") or {}).get("application/json")
            request = f"<h3>Request body (JSON)</h3>{_fields(body['schema'], spec)}" if body else ""
            responses = "".join(
                f"<li><code>{html.escape(code)}</code> {html.escape(str(response.get('description', '')))}</li>"
                for code, response in (operation.get("responses") or {}).items()
            )
            routes.append(
                f'<section class="route" id="{html.escape(method + path)}"><h2><span class="method {method}">'
                f"{method.upper()}</span><code>{html.escape(path)}</code></h2>"
                f"<p>{html.escape(str(operation.get('description') or operation.get('summary') or ''))}</p>"
                f"{request}<h3>Responses</h3><ul>{responses}</ul></section>"
            )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Tutor API</title><style>{STYLE}</style></head><body><header><h1>Tutor API</h1>"
        f"<p>{html.escape(str(info.get('description', '')))} The machine-readable schema: "
        f'<a href="{html.escape(openapi_url)}">openapi.json</a>. Send <code>Authorization: Bearer TOKEN</code> '
        "when the server has a token.</p></header>" + "".join(routes) + "</body></html>"
    )
