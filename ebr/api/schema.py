"""Post-processing of the published OpenAPI schema (drf-spectacular POSTPROCESSING_HOOKS)."""

from __future__ import annotations

from typing import Any

# Request bodies the API refuses any unknown field of (400 "Unknown field."): the schema says so,
# so that an integrator's generated client and validator refuse a misspelt field before sending.
CLOSED_COMPONENTS = ("ReadingIn", "ReadingsPost")


def request_bodies_closed(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Mark the posted objects `additionalProperties: false`, as the API enforces."""
    schemas = result.get("components", {}).get("schemas", {})
    for name in CLOSED_COMPONENTS:
        if name in schemas:
            schemas[name]["additionalProperties"] = False
    return result
