"""One error shape for the whole API: {"errors": [{"index", "field", "message"}, ...]} with a 4xx status.

Integrators parse one structure whatever went wrong; DRF's default shapes vary per error. `index`
is the position of the reading an error is about, null when it is about the request as a whole
(authentication, method, rate limit, query parameters).
"""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def _flatten(detail: Any, field: str | None = None) -> list[dict[str, Any]]:
    if isinstance(detail, dict):
        errors: list[dict[str, Any]] = []
        for key, value in detail.items():
            name = key if field is None else f"{field}.{key}"
            errors.extend(_flatten(value, None if key == "non_field_errors" else name))
        return errors
    if isinstance(detail, list):
        return [error for value in detail for error in _flatten(value, field)]
    return [{"index": None, "field": field, "message": str(detail)}]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and "errors" in data and len(data) == 1:
        return response
    if isinstance(data, dict) and set(data) == {"detail"}:
        data = {"errors": [{"index": None, "field": None, "message": str(data["detail"])}]}
    else:
        data = {"errors": _flatten(data)}
    response.data = data
    return response
