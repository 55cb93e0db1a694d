"""How instruments get into the API: bearer-token authentication, their principal, rate limit.

An instrument is not a person and has no session: it authenticates each request with
`Authorization: Bearer <token>`. Its principal holds only the `instrument` role, so the role
matrix (qms/roles.py) gives it READINGS_POST and nothing else; API views that do not list this
authentication class never even see the token.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import redis
from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from redis.exceptions import RedisError
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.throttling import SimpleRateThrottle

from ebr.models import Instrument
from ebr.services.instruments import instrument_for_token, instrument_used
from qms.roles import Capability, Role, can

MAX_TOKEN_LENGTH = 200
log = logging.getLogger(__name__)


class InstrumentPrincipal:
    """`request.user` for an instrument: authenticated, active, role `instrument` only."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    role_names = frozenset({Role.INSTRUMENT.value})

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.username = instrument.actor_label

    def __str__(self) -> str:
        return self.username

    def get_username(self) -> str:
        return self.username

    def has_role(self, *roles: Role) -> bool:
        return bool(self.role_names & {role.value for role in roles})


class InstrumentTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>`; a wrong, revoked or malformed token is 401."""

    keyword = "bearer"

    def authenticate(self, request: Any) -> tuple[InstrumentPrincipal, Instrument] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword:
            return None
        token = token.strip()
        if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii() or not token.isprintable():
            raise AuthenticationFailed("Invalid instrument token.")
        instrument = instrument_for_token(token)
        if instrument is None:
            raise AuthenticationFailed("Invalid or revoked instrument token.")
        instrument_used(instrument)
        return InstrumentPrincipal(instrument), instrument

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="instruments"'


class InstrumentTokenScheme(OpenApiAuthenticationExtension):
    """Publishes the bearer-token scheme in the OpenAPI schema."""

    target_class = "ebr.api.instruments.InstrumentTokenAuthentication"
    name = "instrumentToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer",
                "description": "The token printed once by `manage.py create_instrument NAME --equipment EQ_ID`."}


def request_instrument(request: Any) -> Instrument | None:
    return request.auth if isinstance(request.auth, Instrument) else None


class IsInstrument(BasePermission):
    """Only an instrument may post readings (Capability.READINGS_POST)."""

    message = "Only a registered instrument may post readings."

    def has_permission(self, request: Any, view: Any) -> bool:
        return request_instrument(request) is not None and can(request.user, Capability.READINGS_POST)


class MayReadReadings(BasePermission):
    """A person who may view batches, or an instrument (restricted to its own readings by the view)."""

    message = "Your role does not allow reading process data."

    def has_permission(self, request: Any, view: Any) -> bool:
        if request_instrument(request) is not None:
            return can(request.user, Capability.READINGS_POST)
        return can(request.user, Capability.BATCH_VIEW)


@functools.cache
def _counters(location: str) -> redis.Redis:
    """The rate counters' Redis client: one per process, thread-safe (it holds a connection pool).

    Short timeouts: a Redis that hangs must not hold instrument posts up for longer than a second.
    """
    return redis.Redis.from_url(location, socket_connect_timeout=1, socket_timeout=1)


class InstrumentRateThrottle(SimpleRateThrottle):
    """Requests per instrument token (settings.INSTRUMENT_RATE_LIMIT), counted in Redis.

    A fixed-window counter rather than DRF's default sliding log, which reads and rewrites the
    list of every request timestamp of the last period on each request: at hundreds of posts a
    minute that list is the throttle's whole cost. The counter is one INCR and one EXPIRE sent
    together (one round trip), not Django's cache.incr, which costs an EXISTS and an INCRBY.
    """

    scope = "instrument"

    def get_rate(self) -> str:
        return settings.INSTRUMENT_RATE_LIMIT

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        instrument = request_instrument(request)
        if instrument is None:
            return None
        # The token prefix makes the key change with a new token (and a new test database).
        return f"ebr:throttle:instrument:{instrument.pk}:{instrument.token_prefix}"

    def allow_request(self, request: Any, view: Any) -> bool:
        key = self.get_cache_key(request, view)
        if key is None or self.num_requests is None or self.duration is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        self.window_end = (window + 1) * self.duration
        try:
            pipeline = _counters(settings.CACHES["default"]["LOCATION"]).pipeline(transaction=False)
            # The window's key outlives the window by a second, then Redis drops it.
            count, _ = pipeline.incr(f"{key}:{window}").expire(f"{key}:{window}", self.duration + 1).execute()
        except (RedisError, OSError) as error:
            # Redis down: the readings matter more than the rate limit, so the post goes on unthrottled
            # (its alarm evaluation waits in the outbox until Redis is back; issue #9, faults 3).
            log.warning("instrument rate limit not checked, Redis unavailable: %s", error)
            return True
        return int(count) <= self.num_requests

    def wait(self) -> float:
        return max(self.window_end - self.timer(), 0.0)
