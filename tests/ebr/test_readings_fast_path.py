"""The ingest fast path accepts exactly what the full path accepts, and reads the same values.

Nearly every instrument post is decoded by msgspec into typed columns (`_readings_fast`); any
body it does not take is parsed again by orjson and checked reading by reading (`_parse`,
`_validate`), which lists every problem. If the two ever disagreed, a reading could be stored
that the rules refuse, or stored with another value than the instrument sent. So both are run
side by side on generated bodies, well-formed and hostile, down to the bits of every float.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ebr.services.readings import ReadingsRefused, _parse, _readings_fast, _validate

NOW = datetime(2026, 11, 27, 9, 0, 0, tzinfo=UTC)
REGISTRY = {"ph": (1, "[pH]"), "do": (2, "%"), "temp": (3, "Cel"), "vcd": (4, "10*6/mL")}


@dataclass(frozen=True)
class Raw:
    """A JSON token written as it is (NaN, 1e999, 01 ...), which no encoder would produce."""

    text: str


def _json(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{orjson.dumps(key).decode()}:{_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json(item) for item in value) + "]"
    if type(value) is int:
        return str(value)  # any size: orjson writes 64-bit integers only
    return orjson.dumps(value).decode()


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


RAW_NUMBERS = [Raw(text) for text in ("NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1E+2", "-0", "-0.0", "01",
                                      "1.", ".5", "+1", "4.9e-324", "1e-400", "123456789012345678901234567890",
                                      "9223372036854775807", "9223372036854775808", "-1", "1.7976931348623157e308")]
seqs = st.one_of(st.integers(min_value=0, max_value=10**6), st.integers(min_value=-(2**64), max_value=2**64),
                 st.sampled_from([True, False, None, 1.0, 2.5, "7", [], {}]), st.sampled_from(RAW_NUMBERS))
timestamps = st.one_of(
    st.integers(min_value=-40 * 86400, max_value=600).map(lambda s: _stamp(NOW + timedelta(seconds=s))),
    st.sampled_from([
        "2026-11-27T08:59:00Z", "2026-11-27t08:59:00z", "2026-11-27T08:59:00.123456789Z", "2026-11-27T09:59:00+01:00",
        "2026-11-27T08:59:00+15:59", "2026-11-27T08:59:00-23:59", "2026-11-27T08:59:00", "2026-11-27 08:59:00Z",
        "2026-11-27T08:59Z", "2026-02-30T08:59:00Z", "2026-11-27T24:00:00Z", "2026-11-27T09:04:59Z",
        "2026-11-27T09:05:01Z", "2026-10-28T09:00:00Z", "yesterday", "", "2026-11-27T08:59:00.Z"]),
    st.sampled_from([0, 1.5, None, True, ["2026-11-27T08:59:00Z"]]))
values = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(min_value=-(2**70), max_value=2**70),
                   st.sampled_from([True, None, "7.1", [7.1], {"v": 1}]), st.sampled_from(RAW_NUMBERS))
codes = st.one_of(st.sampled_from(sorted(REGISTRY)), st.sampled_from(["PH", "ph ", "unknown", "", 7, None]))
units = st.one_of(st.sampled_from([unit for _, unit in REGISTRY.values()]), st.sampled_from(["pH", "", None, 1]))


BOUNDARIES = [_stamp(moment) for moment in (
    NOW - timedelta(days=30), NOW - timedelta(days=30, microseconds=1), NOW - timedelta(days=30, seconds=-1),
    NOW + timedelta(minutes=5), NOW + timedelta(minutes=5, microseconds=1), NOW + timedelta(minutes=4, seconds=59))]


def _mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Four times in five a good value: so that bodies with a single fault are common."""
    return st.integers(min_value=0, max_value=4).flatmap(lambda n: bad if n == 0 else good)


@st.composite
def readings(draw: st.DrawFn) -> dict[str, Any]:
    code = draw(_mostly(st.sampled_from(sorted(REGISTRY)), codes))
    unit = REGISTRY[code][1] if code in REGISTRY and draw(st.integers(0, 4)) else draw(units)
    item: dict[str, Any] = {
        "seq": draw(_mostly(st.integers(min_value=0, max_value=2**63 - 1), seqs)),
        "ts": draw(_mostly(st.sampled_from(BOUNDARIES), timestamps)), "parameter": code,
        "value": draw(_mostly(st.floats(allow_nan=False, allow_infinity=False), values)), "unit": unit}
    if draw(st.integers(min_value=0, max_value=10)) == 0:
        del item[draw(st.sampled_from(sorted(item)))]
    if draw(st.integers(min_value=0, max_value=20)) == 0:
        item["comment"] = "extra"
    return item


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    items = draw(st.lists(readings(), min_size=0, max_size=6))
    if draw(st.booleans()):  # mostly good readings, so that accepted bodies are common too
        items = [draw(good_readings()) for _ in range(draw(st.integers(min_value=1, max_value=6)))] + \
            items[: draw(st.integers(min_value=0, max_value=1))]
    body: dict[str, Any] = {"readings": items}
    batch = draw(st.sampled_from(["absent", None, "B-2026-0007", "B/7.a_b", "", " B-1", "-B", 7, "x" * 33]))
    if batch != "absent":
        body["batch"] = batch
    if draw(st.integers(min_value=0, max_value=20)) == 0:
        body["note"] = "extra"
    text = _json(body)
    return draw(st.sampled_from([text, text, text, " " + text + "\n", text + "x", "[" + text + "]"])).encode()


@st.composite
def good_readings(draw: st.DrawFn) -> dict[str, Any]:
    code = draw(st.sampled_from(sorted(REGISTRY)))
    value = draw(st.one_of(st.floats(min_value=-1e15, max_value=1e15), st.integers(-(10**15), 10**15)))
    return {"seq": draw(st.integers(min_value=0, max_value=2**63 - 1)),
            "ts": _stamp(NOW - timedelta(seconds=draw(st.integers(min_value=0, max_value=29 * 86400)))),
            "parameter": code, "value": value, "unit": REGISTRY[code][1]}


def _full(body: bytes) -> tuple[Any, ...]:
    try:
        batch, items = _parse(body)
        return ("stored", batch, _columns(_validate(items, REGISTRY, NOW)))
    except ReadingsRefused as refused:
        return ("refused", refused.status)


def _columns(readings: Any) -> tuple[Any, ...]:
    # Floats by their bits: -0.0 and 0.0, or two neighbouring doubles, are different measurements.
    return (readings.indexes, readings.seqs, readings.tss, readings.parameter_ids,
            [struct.pack("<d", value) for value in readings.values], readings.units)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
@example(b'{"readings":[{"seq":1,"ts":"2026-11-27T08:00:00Z","parameter":"ph","value":-0,"unit":"[pH]"}]}')
@example(b'{"readings":[{"seq":1,"ts":"2026-11-27T08:00:00Z","parameter":"ph","value":-0.0,"unit":"[pH]"}]}')
@example(b'{"readings":[{"seq":1,"seq":2,"ts":"2026-11-27T08:00:00Z","parameter":"ph","value":7,"unit":"[pH]"}]}')
@example(b'{"readings":[],"readings":[{"seq":1,"ts":"2026-11-27T08:00:00Z","parameter":"ph","value":7,"unit":"[pH]"}]}')
@example(b'{"readings":[{"seq":1,"ts":"2026-11-27T08:00:00Z","parameter":"ph","value":7,"unit":"[pH]"}],"batch":null}')
@example(b'{"readings":[{"seq":1,"ts":"2026-11-27T08:00:00Z","parameter":"ph","value":7,"unit":"\\u005bpH]"}]}')
@example(b'{"readings":[{"seq":1,"ts":"2026-11-27T08:00:00Z","parameter":"ph","value":7,"unit":"[pH]\\ud800"}]}')
@example(b'{"readings":[{"seq":1,"ts":"2026-11-27T08:00:00Z","parameter":"ph","value":7,"unit":"\xb5g"}]}')
@example(b'{"readings":[{"seq":1,"ts":"2026-11-27T08:00:00Z\\n2026-11-27T08:00:01Z","parameter":"ph","value":7,'
         b'"unit":"[pH]"}]}')
@example(b'{"readings":[{"seq":1,"ts":"2026-11-27T08:00:00Z","parameter":"ph","value":7,"unit":"[pH]\xff"}]}')
def test_the_fast_path_takes_a_body_only_when_the_full_path_stores_the_same_readings(body: bytes) -> None:
    fast = _readings_fast(body, REGISTRY, NOW)

    # None is always safe (the full path decides), only slower.
    if fast is not None:
        assert _full(body) == ("stored", fast[0], _columns(fast[1])), body[:300]


@settings(max_examples=300, deadline=None)
@given(st.lists(good_readings(), min_size=1, max_size=20),
       st.sampled_from([None, "absent", "B-2026-0007"]))
def test_every_good_body_takes_the_fast_path(items: list[dict[str, Any]], batch: str | None) -> None:
    body = _json({"readings": items, **({} if batch == "absent" else {"batch": batch})}).encode()

    fast = _readings_fast(body, REGISTRY, NOW)

    assert fast is not None, body[:300]
    assert _full(body) == ("stored", fast[0], _columns(fast[1]))


def test_a_post_of_a_thousand_good_readings_takes_the_fast_path() -> None:
    body = orjson.dumps({"batch": "B-2026-0007", "readings": [
        {"seq": seq, "ts": _stamp(NOW - timedelta(seconds=seq)), "parameter": "ph", "value": 7 + seq / 1000,
         "unit": "[pH]"} for seq in range(1000)]})

    fast = _readings_fast(body, REGISTRY, NOW)

    assert fast is not None and len(fast[1]) == 1000
    assert ("stored", fast[0], _columns(fast[1])) == _full(body)


@settings(max_examples=500, deadline=None)
@given(st.lists(good_readings(), min_size=1, max_size=6), st.data())
def test_a_body_that_gives_a_field_twice_is_refused_by_both_paths(items: list[dict[str, Any]],
                                                                  data: st.DataObject) -> None:
    """Each copy good on its own, but which one counts is up to the parser: neither path stores it."""
    position = data.draw(st.integers(min_value=0, max_value=len(items) - 1))
    name = data.draw(st.sampled_from(["seq", "ts", "parameter", "value", "unit"]))
    copy = data.draw(good_readings())[name]
    text = _json({"readings": items, **data.draw(st.sampled_from([{}, {"batch": "B-2026-0007"}, {"batch": None}]))})
    marker = _json(items[position]).encode()
    repeat = b"," + orjson.dumps(name) + b":" + _json(copy).encode()
    body = text.encode().replace(marker, marker[:-1] + repeat + b"}", 1)

    assert _readings_fast(body, REGISTRY, NOW) is None
    assert _full(body) == ("refused", 400)


@settings(max_examples=1000, deadline=None)
@given(st.lists(good_readings(), min_size=1, max_size=4), st.data())
def test_a_body_damaged_in_transit_is_never_taken_differently(items: list[dict[str, Any]], data: st.DataObject) -> None:
    """Any byte of a good body changed (a Latin-1 "µ" from old firmware, a flipped bit): the fast
    path either steps aside or reads what the full path reads, and never raises."""
    body = bytearray(_json({"readings": items}).encode())
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        body[data.draw(st.integers(min_value=0, max_value=len(body) - 1))] = data.draw(st.integers(0, 255))

    fast = _readings_fast(bytes(body), REGISTRY, NOW)

    if fast is not None:
        assert _full(bytes(body)) == ("stored", fast[0], _columns(fast[1]))
