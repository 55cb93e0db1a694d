"""Instrument API v1 (specs/instrument-api.md): POST /api/v1/readings, GET /api/v1/batches/{batch}/readings.

Thin adapters: the POST reads the raw body (size-capped before it is read) and hands it to
`readings_ingest`; the GET validates its query and calls the selectors. The serializers below
are the published contract: they document the schema at /api/schema/; the POST body itself is
validated by the service, which is faster on 5,000 readings and reports {index, field, message}.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ebr.api.instruments import (
    InstrumentRateThrottle,
    InstrumentTokenAuthentication,
    IsInstrument,
    MayReadReadings,
    request_instrument,
)
from ebr.models import Batch, Instrument, InstrumentParameter
from ebr.process_data import (
    ReadingsFilter,
    alarms_open,
    reading_buckets,
    readings_page,
)
from ebr.services.alarms import alarms_evaluate_now
from ebr.services.readings import MAX_READINGS, RFC3339, ReadingsRefused, readings_ingest

BUCKET = re.compile(r"^([1-9][0-9]{0,5})([smh])$")
BUCKET_UNITS = {"s": 1, "m": 60, "h": 3600}
MAX_BUCKET_SECONDS = 7 * 86400
BUCKET_HELP = "A whole number of seconds, minutes or hours (s, m or h), at most 7 days: e.g. 60s, 5m or 1h."
BATCH_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
DEFAULT_LIMIT, MAX_LIMIT = 1000, 10000


# --- the contract -----------------------------------------------------------------------------

class ReadingInSerializer(serializers.Serializer):
    seq = serializers.IntegerField(min_value=0, max_value=2**63 - 1,
                                   help_text="The instrument's own increasing counter; (instrument, seq) is unique.")
    ts = serializers.DateTimeField(help_text="RFC 3339 with a time zone; at most 5 minutes in the future and at most "
                                             "INSTRUMENT_MAX_AGE_DAYS (default 30) days in the past.")
    parameter = serializers.CharField(max_length=40, help_text="A code of the parameter registry, e.g. ph.")
    value = serializers.FloatField(min_value=-1e15, max_value=1e15,
                                   help_text="A finite number from -1e15 to 1e15: no NaN, no Infinity.")
    unit = serializers.CharField(max_length=32, help_text="The parameter's UCUM unit, e.g. [pH].")


class ReadingsPostSerializer(serializers.Serializer):
    batch = serializers.CharField(required=False, allow_null=True, max_length=32,
                                  help_text="Optional (absent or null): else the batch the equipment is assigned "
                                            "to at each ts.")
    readings = serializers.ListField(child=ReadingInSerializer(), min_length=1, max_length=MAX_READINGS,
                                     help_text=f"1 to {MAX_READINGS} readings; one bad reading refuses them all.")


@extend_schema_field({"type": "string", "enum": ["alert", "action", "feed_gap"],
                      "description": "alert or action limit passed, or no data for too long (feed_gap)."})
class AlarmKindField(serializers.CharField):
    pass


class AlarmSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    batch = serializers.CharField()
    instrument = serializers.CharField()
    parameter = serializers.CharField(allow_null=True, help_text="None for a feed gap.")
    kind = AlarmKindField()
    critical = serializers.BooleanField()
    opened_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)
    worst_value = serializers.FloatField(allow_null=True)
    limit = serializers.CharField()
    acknowledged = serializers.BooleanField()
    deviation = serializers.CharField(allow_null=True)


class ReadingsPostResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Readings stored by this request.")
    duplicates = serializers.IntegerField(help_text="Readings already stored (same seq, same content).")
    alarms = AlarmSerializer(many=True, help_text="The alarms these readings raised or escalated (one per "
                                                  "excursion, also one that already ended within the request) and "
                                                  "the alarms open "
                                                  "on these batches and parameters. A request of up to "
                                                  "INSTRUMENT_EVALUATE_INLINE_MAX readings (default 500) is "
                                                  "evaluated before the answer; a larger one by the worker right "
                                                  "after, its alarms showing from the next request on.")


class ErrorItemSerializer(serializers.Serializer):
    index = serializers.IntegerField(allow_null=True,
                                     help_text="Position in readings; null for the request as a whole.")
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class ErrorsSerializer(serializers.Serializer):
    errors = ErrorItemSerializer(many=True)


class ReadingOutSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    ts = serializers.DateTimeField()
    parameter = serializers.CharField()
    value = serializers.FloatField()
    unit = serializers.CharField()
    instrument = serializers.CharField()


class ReadingBucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    min = serializers.FloatField()
    mean = serializers.FloatField()
    max = serializers.FloatField()
    n = serializers.IntegerField()


class ReadingsPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    results = PolymorphicProxySerializer(component_name="ReadingOrBucket", resource_type_field_name=None,
                                         serializers=[ReadingOutSerializer, ReadingBucketSerializer], many=True)


@extend_schema_field(OpenApiTypes.DATETIME)
class ZonedDateTimeField(serializers.Field):
    """An RFC 3339 date-time that must carry its zone (a local time is ambiguous)."""

    def to_internal_value(self, data: Any) -> datetime:
        if not isinstance(data, str) or not RFC3339.fullmatch(data):
            raise ValidationError("Give an RFC 3339 date-time with a time zone, e.g. 2026-11-27T09:00:05Z.")
        try:
            # In UTC: PostgreSQL refuses zone offsets beyond 15:59 that RFC 3339 allows.
            return datetime.fromisoformat(data.upper()).astimezone(UTC)
        except (ValueError, OverflowError):
            raise ValidationError("Not a valid date and time.") from None

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


class ReadingsQuerySerializer(serializers.Serializer):
    parameter = serializers.CharField(required=False, max_length=40, help_text="Parameter code, e.g. ph.")
    to = ZonedDateTimeField(required=False, help_text="Before this time (exclusive).")
    bucket = serializers.RegexField(BUCKET.pattern, required=False,
                                    help_text="Downsample to min/mean/max/n per bucket, e.g. 60s, 5m, 1h "
                                              "(needs parameter).",
                                    error_messages={"invalid": BUCKET_HELP, "max_length": BUCKET_HELP})
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT)
    cursor = serializers.CharField(required=False, max_length=200, help_text="From `next`; opaque.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # "from" is a Python keyword, so it cannot be declared as a class attribute.
        self.fields["from"] = ZonedDateTimeField(required=False, help_text="From this time on (inclusive).")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("bucket") and not attrs.get("parameter"):
            raise ValidationError({"bucket": "Name the parameter to downsample."})
        start, end = attrs.get("from"), attrs.get("to")
        if start and end and end <= start:
            raise ValidationError({"to": "`to` must be after `from`."})
        if attrs.get("bucket"):
            match = BUCKET.fullmatch(attrs["bucket"])
            if match is None:
                raise ValidationError({"bucket": BUCKET_HELP})
            attrs["bucket_seconds"] = int(match.group(1)) * BUCKET_UNITS[match.group(2)]
            if attrs["bucket_seconds"] > MAX_BUCKET_SECONDS:
                raise ValidationError({"bucket": "At most 7 days (168h) per bucket, e.g. 60s, 5m or 1h."})
        return attrs


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."


def _errors(**descriptions: str) -> dict[int, OpenApiResponse]:
    return {int(code[1:]): OpenApiResponse(ErrorsSerializer, description=text) for code, text in descriptions.items()}


RATE_LIMITED = "Too many requests for this instrument token; retry after the Retry-After header."
POST_ERRORS = _errors(
    e400="Invalid JSON or invalid readings; nothing stored. Every problem as {index, field, message}.",
    e401="Missing, wrong or revoked instrument token; nothing stored.",
    e403="The batch named is not the one the instrument's equipment was assigned to at ts; nothing stored.",
    e409="A seq already received (or repeated in the request) with other content, or new readings for a batch "
         "whose record is closed (released, rejected, aborted); nothing stored.",
    e413=f"Body above the size limit or more than {MAX_READINGS} readings; nothing stored.",
    e422="The instrument's equipment was not assigned to any batch at ts; nothing stored.",
    e429=RATE_LIMITED)
GET_ERRORS = _errors(
    e400="Invalid query (unknown parameter, time without zone, bad bucket or cursor).",
    e401="Not logged in and no valid instrument token.", e403="The role does not allow reading batch data.",
    e404="No such batch.", e429=RATE_LIMITED)


# --- POST /api/v1/readings ---------------------------------------------------------------------

class ReadingsPostView(APIView):
    """Instruments post run data; the raw body is kept as the original record."""

    authentication_classes = [InstrumentTokenAuthentication]
    permission_classes = [IsInstrument]
    throttle_classes = [InstrumentRateThrottle]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="readings_post", summary="Post instrument readings", tags=["instrument API"],
        request=ReadingsPostSerializer,
        responses={201: OpenApiResponse(ReadingsPostResultSerializer, description="Stored (or already stored)."),
                   **POST_ERRORS},
        examples=[OpenApiExample("Two readings", request_only=True, value={
            "batch": "B-2026-0007", "readings": [
                {"seq": 1041, "ts": "2026-11-27T09:00:05Z", "parameter": "ph", "value": 7.12, "unit": "[pH]"},
                {"seq": 1042, "ts": "2026-11-27T09:00:05Z", "parameter": "do", "value": 41.5, "unit": "%"}]})],
    )
    def post(self, request: Request) -> Response:
        instrument = request_instrument(request)
        assert instrument is not None  # IsInstrument
        body = _body(request)
        try:
            result = readings_ingest(instrument=instrument, body=body)
        except ReadingsRefused as refused:
            return Response({"errors": refused.errors}, status=refused.status)
        changed = None
        if 0 < result.accepted <= settings.INSTRUMENT_EVALUATE_INLINE_MAX:
            changed = alarms_evaluate_now(post_id=result.post_id)
        alarms = alarms_open(batch_ids=result.batch_ids, parameter_ids=result.parameter_ids, instrument=instrument,
                             changed=changed or frozenset())
        return Response({"accepted": result.accepted, "duplicates": result.duplicates, "alarms": alarms},
                        status=status.HTTP_201_CREATED)


def _body(request: Request) -> bytes:
    """The raw body, refused with 413 past the cap before more than the cap is read."""
    limit = settings.INSTRUMENT_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise PayloadTooLarge(f"The body may be at most {limit // (1024 * 1024)} MB.")
    body = request._request.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"The body may be at most {limit // (1024 * 1024)} MB.")
    return body


readings_post = login_not_required(ReadingsPostView.as_view())


# --- GET /api/v1/batches/{batch}/readings ----------------------------------------------------------

def _cursor_encode(values: tuple[Any, ...]) -> str:
    text = "|".join(value.isoformat() if isinstance(value, datetime) else str(value) for value in values)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("no zone")
    return moment.astimezone(UTC)


def _cursor_decode(cursor: str, bucketed: bool) -> Any:
    try:
        parts = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
        if bucketed and len(parts) == 1:
            return _moment(parts[0])
        if not bucketed and len(parts) == 2:
            return _moment(parts[0]), int(parts[1])
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        pass
    raise ValidationError({"cursor": "Not a cursor from this endpoint; use the `next` URL as given."})


class BatchReadingsView(APIView):
    """Readings of one batch, raw or downsampled; people with batch access, or an instrument (its own)."""

    authentication_classes = [InstrumentTokenAuthentication, SessionAuthentication]
    permission_classes = [MayReadReadings]
    throttle_classes = [InstrumentRateThrottle]

    @extend_schema(
        operation_id="batch_readings_list", summary="Readings of a batch", tags=["instrument API"],
        parameters=[ReadingsQuerySerializer,
                    OpenApiParameter("batch", OpenApiTypes.STR, OpenApiParameter.PATH, description="Batch number.")],
        responses={200: OpenApiResponse(ReadingsPageSerializer, description="Readings (or buckets with `bucket`) "
                                                                           "in time order; follow `next`."),
                   **GET_ERRORS},
    )
    def get(self, request: Request, batch: str) -> Response:
        blank = sorted(name for name, value in request.query_params.items() if value == "")
        if blank:  # DRF would take `?parameter=` for "no parameter": refuse it instead
            raise ValidationError({name: "Give a value or leave the parameter out." for name in blank})
        query = ReadingsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        instrument = request_instrument(request)
        where = ReadingsFilter(batch=_batch(batch, instrument), parameter=_parameter(params.get("parameter")),
                               start=params.get("from"), end=params.get("to"), instrument=instrument)
        bucketed = "bucket_seconds" in params
        after = _cursor_decode(params["cursor"], bucketed) if params.get("cursor") else None
        if bucketed:
            page = reading_buckets(where, seconds=params["bucket_seconds"], after=after, limit=params["limit"])
        else:
            page = readings_page(where, after=after, limit=params["limit"])
        next_url = None
        if page.next_cursor is not None:
            query_string = {**request.query_params.dict(), "cursor": _cursor_encode(page.next_cursor)}
            next_url = request.build_absolute_uri(f"{request.path}?{urlencode(query_string)}")
        return Response({"count": page.count, "next": next_url, "results": page.results})


def _batch(number: str, instrument: Instrument | None) -> Batch:
    """The batch; for an instrument only one its equipment was ever assigned to, so that a token cannot
    tell which of the (sequential) batch numbers exist: any other answers as an unknown batch."""
    batches = Batch.objects.filter(number=number)
    if instrument is not None:
        batches = batches.filter(equipment_uses__equipment_id=instrument.equipment_id)
    batch = batches.first() if BATCH_NUMBER.fullmatch(number) else None
    if batch is None:
        raise NotFound("No such batch.")
    return batch


def _parameter(code: str | None) -> InstrumentParameter | None:
    if code is None:
        return None
    parameter = InstrumentParameter.objects.filter(code=code).first()
    if parameter is None:
        raise ValidationError({"parameter": f"Unknown parameter {code!r}; see the parameter registry."})
    return parameter


batch_readings = login_not_required(BatchReadingsView.as_view())
