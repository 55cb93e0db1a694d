"""View and API guards built on the role matrix in qms/roles.py."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from qms.roles import Capability, can


def capability_required(capability: Capability) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """403 unless the logged-in user's roles hold `capability` (login itself is middleware's)."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(request: Any, *args: Any, **kwargs: Any) -> Any:
            if not can(request.user, capability):
                raise PermissionDenied(f"Your role does not allow this ({capability.value}).")
            return view(request, *args, **kwargs)

        guarded.capability = capability  # type: ignore[attr-defined]
        return guarded

    return decorator


class HasCapability(BasePermission):
    """DRF permission: set `capability` on the view."""

    def has_permission(self, request: Any, view: Any) -> bool:
        capability = getattr(view, "capability", None)
        return capability is not None and can(request.user, capability)
