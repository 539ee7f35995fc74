"""Schemathesis hooks for scripts/api-contract.

JSON Schema cannot compare two fields, so the OpenAPI document states these
rules in words (descriptions) and the server enforces them with a 400 or 422.
A request generated as valid ("positive") that breaks one is dropped here
rather than sent and counted as "valid data refused":

- a sensor's min must be below its max;
- a sensor's kind, states and range fit together: a state sensor needs
  states, only it has them, and only a numeric sensor has a range (the
  document states this with if/then; a generator that ignores it is
  caught here);
- history: start before end (end defaults to now, start to end minus 24 h
  or the earliest time InfluxDB holds, whichever is later), at most 10,000
  points of `every` (CSV, `format=csv`, takes up to 1,000,000 rows, but
  requests are kept to JSON's 10,000 either way to bound the run's time);
- a preview: start before end (an end after now counts as now), at most
  31 days apart;
- alarm KPIs: start before end (an end after now counts as now), at most
  366 days apart;
- out of service: `until` in the future (a minute ahead at least, so the
  request still holds when it arrives).

JSON Schema counts 2.0 as an integer; the server reads integers (a
version, epoch milliseconds) only as JSON integers, as the document says:
a valid request has its integral floats sent as integers.

Requests generated as invalid ("negative") are left as they are.

The run's own key is never revoked or rotated: a request to
`/api/v1/api-keys/{name}` that names it (its name `api-contract`, or its
public id, `API_CONTRACT_KEY_ID`; the stateful phase takes both from the
key list) is dropped, since every later request would be refused 401.

The coverage phase sends one request per value of every enum; for a site's
timezone (Postgres' 1,200 names) it keeps UTC and one name in 25, to bound
the run's time.
"""

from __future__ import annotations

import os
import re
import time
import zlib
from datetime import datetime

import schemathesis

DAY_MS = 86_400_000
MAX_POINTS = 10_000
MAX_PREVIEW_MS = 31 * DAY_MS
MAX_KPI_MS = 366 * DAY_MS
# EpochMillis::MIN_MILLIS: the earliest time InfluxDB holds.
MIN_MILLIS = -9_223_372_036_854
UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": DAY_MS}


def _millis(value):
    """A time of the document's form (epoch ms, or RFC 3339) in epoch ms."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value)
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _positive(case) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


def _range_ok(start, end, max_ms=None, cap_end=False) -> bool:
    now = int(time.time() * 1000)
    end = _millis(end)
    end = now if end is None else (min(end, now) if cap_end else end)
    start = _millis(start)
    start = max(end - DAY_MS, MIN_MILLIS) if start is None else start
    if start >= end:
        return False
    return max_ms is None or end - start <= max_ms


def _sampled_out(case, body) -> bool:
    """A coverage request for one timezone among the many left out."""
    timezone = body.get("timezone")
    return (
        case.meta is not None
        and case.meta.phase.name == "coverage"
        and isinstance(timezone, str)
        and timezone != "UTC"
        and zlib.crc32(timezone.encode()) % 25 != 0
    )


INTEGER_FIELDS = ("version", "start", "end", "until", "starts_at", "ends_at")


def _kind_rules_hold(body, creating: bool) -> bool:
    """NewSensor::check: states only (and always) for a state sensor, a
    range only for a numeric one. A new sensor without a kind is numeric;
    a change without one keeps the sensor's (the server judges it)."""
    kind = body.get("kind", "numeric" if creating else None)
    has_range = body.get("min") is not None or body.get("max") is not None
    if kind in ("numeric", "boolean") and "states" in body:
        return False
    if kind in ("boolean", "state") and has_range:
        return False
    return not (creating and kind == "state" and "states" not in body)


@schemathesis.hook
def map_case(ctx, case):
    if _positive(case) and isinstance(case.body, dict):
        for field in INTEGER_FIELDS:
            value = case.body.get(field)
            if isinstance(value, float) and value.is_integer():
                case.body[field] = int(value)
    return case


RUN_KEY_NAMES = {"api-contract", os.environ.get("API_CONTRACT_KEY_ID", "api-contract")}


def _may_name_the_run_key(case) -> bool:
    if not case.operation.path.startswith("/api/v1/api-keys/{name}"):
        return False
    name = (case.path_parameters or {}).get("name")
    if not isinstance(name, str):
        return False
    return name.strip() in RUN_KEY_NAMES


@schemathesis.hook
def filter_case(ctx, case) -> bool:
    if _may_name_the_run_key(case):
        return False
    body = case.body if isinstance(case.body, dict) else {}
    if _sampled_out(case, body):
        return False
    if not _positive(case):
        return True
    path = case.operation.path
    if path.endswith("/sensors") or path.endswith("/sensors/{sensor}"):
        low, high = body.get("min"), body.get("max")
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low >= high:
            return False
        if not _kind_rules_hold(body, creating=case.method.upper() == "POST"):
            return False
    if path.endswith("/history"):
        query = case.query or {}
        if not _range_ok(query.get("start"), query.get("end")):
            return False
        every = query.get("every")
        if every is not None:
            number, unit = re.fullmatch(r"([0-9]+)([a-z]+)", every).groups()
            now = int(time.time() * 1000)
            end = _millis(query.get("end")) or now
            start = _millis(query.get("start"))
            start = max(end - DAY_MS, MIN_MILLIS) if start is None else start
            points = -(-(end - start) // (int(number) * UNITS_MS[unit]))
            if points > MAX_POINTS:
                return False
    if path.endswith("/alarm-kpis"):
        query = case.query or {}
        if not _range_ok(query.get("start"), query.get("end"), MAX_KPI_MS, cap_end=True):
            return False
    if path.endswith("/alert-rules/preview"):
        if not _range_ok(body.get("start"), body.get("end"), MAX_PREVIEW_MS, cap_end=True):
            return False
    if path.endswith("/out-of-service") and case.method.upper() == "PUT":
        try:
            until = _millis(body.get("until"))
        except (ValueError, OverflowError):
            until = None
        if until is None or until <= int(time.time() * 1000) + 60_000:
            return False
    return True
