"""Payload filters: which of its subscribed events a webhook wants, judged on the envelope.

A filter is a JSON object over the envelope a receiver gets (``id``, ``event``, ``timestamp``,
``organization_id``, ``data``): ``{"data.severity": {"$in": ["high", "critical"]}}``. Keys are
dotted paths through objects (an array is never looked into: not on the way, and not at the
end, where an array or object equals no value), or ``$and``/``$or`` (lists of filters) and
``$not`` (a filter); several keys must all hold. A path's condition is a bare value (``$eq``)
or an object of operators, all of which must hold:

* ``$eq``/``$neq`` a string, number, boolean or null: equal in type and value (``1`` is not
  ``"1"``, ``true`` is not ``1``; ``1`` is ``1.0``). ``$neq`` is ``$eq`` negated: a missing field
  matches it.
* ``$in``/``$nin`` a non-empty list of those: ``$eq`` one of them / none of them.
* ``$gt``/``$gte``/``$lt``/``$lte`` a number or a string: the field is of the same type and
  compares so (strings by code point).
* ``$exists`` true/false: the key is present (even with ``null``) / absent.
* ``$startsWith`` a string: the field is a string that starts with it.

``matches`` is the truth. ``compile_filter`` turns a valid filter into a PostgreSQL jsonpath
predicate that says the same, stored beside the filter and evaluated by ``jsonb_path_match`` in
``emit()``'s one statement (``deliveries.fanout``), so filtering costs emit no round trip; one
table of cases runs through both (``tests/webhooks/test_filters.py``). The predicate is in
strict mode, so arrays are never unwrapped; a comparison there of a missing field or of values
of two types is *unknown*, which counts as false — and under a negation it is made false first,
so that ``!`` never turns "unknown" into a match the evaluator would not make.

Both read the same text: ``filter_document(event.payload)``, the payload itself unless it holds
a NUL character, which PostgreSQL's jsonb cannot (then each NUL reads as U+FFFD).
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from django.conf import settings

from events.encoding import json_type

LOGICAL = ("$and", "$or", "$not")
COMPARISONS = ("$eq", "$neq", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists", "$startsWith")
OPERATORS = (*COMPARISONS, *LOGICAL)
_ORDER = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_SCALAR = "expected a string, number, true, false or null"

# The two examples the dashboard's form starts from (and the README's PagerDuty and Slack ones).
EXAMPLES: dict[str, dict[str, Any]] = {
    "Only critical threats (PagerDuty)": {"event": "threat.detected", "data.severity": "critical"},
    "High and critical threats, and every blocked one": {
        "$or": [
            {"event": "threat.detected", "data.severity": {"$in": ["high", "critical"]}},
            {"event": "threat.blocked"},
        ]
    },
}


class FilterError(ValueError):
    """A filter that is refused: ``path`` is where (``data.severity.$in``; empty: the filter
    itself), ``message`` what is wrong there (``expected a list``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


# --- Validation --------------------------------------------------------------------------


def encoded_size(value: Any) -> int:
    """The filter's size as it is bounded: compact JSON, UTF-8 bytes."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def validate_filter(value: Any) -> dict[str, Any]:
    """Return ``value`` if it is a filter within the limits; raise FilterError naming where not."""
    if not isinstance(value, dict):
        raise FilterError("", "expected a JSON object of conditions, or null for none")
    if not value:
        raise FilterError("", "an empty filter matches every event; send null to remove the filter")
    limit = settings.WEBHOOK_FILTER_MAX_BYTES
    size = encoded_size(value)
    if size > limit:
        raise FilterError("", f"{size} bytes is too large; at most {limit} (WEBHOOK_FILTER_MAX_BYTES)")
    _check_filter(value, "", 0)
    return value


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_filter(value: Any, where: str, depth: int) -> None:
    if not isinstance(value, dict):
        raise FilterError(where, "expected a JSON object of conditions")
    if not value:
        raise FilterError(where, "expected at least one condition")
    for key, condition in value.items():
        here = _join(where, key)
        if key in LOGICAL:
            if depth >= settings.WEBHOOK_FILTER_MAX_DEPTH:
                raise FilterError(
                    here,
                    f"nested too deep; at most {settings.WEBHOOK_FILTER_MAX_DEPTH} levels of $and, $or and $not"
                    " (WEBHOOK_FILTER_MAX_DEPTH)",
                )
            if key == "$not":
                _check_filter(condition, here, depth + 1)
                continue
            if not isinstance(condition, list) or not condition:
                raise FilterError(here, "expected a non-empty list of filters")
            for index, item in enumerate(condition):
                _check_filter(item, f"{here}[{index}]", depth + 1)
        elif key in COMPARISONS:
            raise FilterError(here, f'expected a field path before it, e.g. {{"data.severity": {{"{key}": …}}}}')
        elif key.startswith("$"):
            raise FilterError(here, f"unknown operator; use one of {', '.join(OPERATORS)}")
        else:
            _check_path(key, here)
            _check_condition(condition, here)


def _check_path(path: str, here: str) -> None:
    segments = path.split(".")
    if any(not segment for segment in segments):
        raise FilterError(here, "expected a dotted path of field names (data.severity)")
    if any(segment.startswith("$") for segment in segments):
        raise FilterError(here, f"a field name may not start with $; operators are {', '.join(OPERATORS)}")
    if "\x00" in path:
        raise FilterError(here, "a field name may not contain the NUL character")
    # No payload nests deeper than JSON_MAX_DEPTH (emit refuses it): a longer path matches nothing.
    if len(segments) > settings.JSON_MAX_DEPTH + 1:
        raise FilterError(here, f"more than {settings.JSON_MAX_DEPTH + 1} fields deep (JSON_MAX_DEPTH)")


def _check_condition(condition: Any, here: str) -> None:
    if isinstance(condition, list):
        raise FilterError(here, 'a list is no value to compare with; use {"$in": [...]} to match any of several')
    if not isinstance(condition, dict):
        _check_scalar(condition, here)
        return
    if not condition:
        raise FilterError(here, "expected at least one operator")
    for operator, operand in condition.items():
        there = _join(here, operator)
        if operator in ("$eq", "$neq"):
            _check_scalar(operand, there)
        elif operator in ("$in", "$nin"):
            if not isinstance(operand, list):
                raise FilterError(there, "expected a list")
            if not operand:
                raise FilterError(there, "expected a non-empty list")
            for index, item in enumerate(operand):
                _check_scalar(item, f"{there}[{index}]")
        elif operator in _ORDER:
            if json_type(operand) not in ("number", "string"):
                raise FilterError(there, "expected a number or a string")
            _check_scalar(operand, there)
        elif operator == "$exists":
            if not isinstance(operand, bool):
                raise FilterError(there, "expected true or false")
        elif operator == "$startsWith":
            if not isinstance(operand, str):
                raise FilterError(there, "expected a string")
            _check_scalar(operand, there)
        elif operator in LOGICAL:
            raise FilterError(there, "not allowed inside a field's condition; put it around the field")
        elif operator.startswith("$"):
            raise FilterError(there, f"unknown operator; use one of {', '.join(COMPARISONS)}")
        else:
            raise FilterError(
                there, f"expected an operator ({', '.join(COMPARISONS)}); for a nested field write its dotted path"
            )


def _check_scalar(value: Any, here: str) -> None:
    kind = json_type(value)
    if kind in ("array", "object", None):
        raise FilterError(here, _SCALAR)
    if kind == "number" and isinstance(value, float) and not math.isfinite(value):
        raise FilterError(here, "expected a finite number")
    if kind == "string" and "\x00" in value:
        raise FilterError(here, "a string may not contain the NUL character")


# --- The evaluator: the truth ------------------------------------------------------------

_MISSING = object()


def _resolve(document: Any, path: str) -> Any:
    value = document
    for segment in path.split("."):
        if not isinstance(value, dict) or segment not in value:
            return _MISSING
        value = value[segment]
    return value


def _equal(value: Any, operand: Any) -> bool:
    kind = json_type(value)
    return kind == json_type(operand) and kind in ("null", "boolean", "number", "string") and value == operand


def _holds(operator: str, operand: Any, value: Any) -> bool:
    if operator == "$exists":
        return (value is not _MISSING) == operand
    if operator == "$eq":
        return _equal(value, operand)
    if operator == "$neq":
        return not _equal(value, operand)
    if operator == "$in":
        return any(_equal(value, item) for item in operand)
    if operator == "$nin":
        return not any(_equal(value, item) for item in operand)
    if operator == "$startsWith":
        return isinstance(value, str) and value.startswith(operand)
    if json_type(value) != json_type(operand):
        return False
    if operator == "$gt":
        return value > operand
    if operator == "$gte":
        return value >= operand
    if operator == "$lt":
        return value < operand
    return value <= operand  # $lte


def matches(filter_: dict[str, Any], document: Any) -> bool:
    """Whether a valid filter holds for ``document`` (the parsed ``filter_document``)."""
    for key, condition in filter_.items():
        if key == "$and":
            holds = all(matches(item, document) for item in condition)
        elif key == "$or":
            holds = any(matches(item, document) for item in condition)
        elif key == "$not":
            holds = not matches(condition, document)
        else:
            value = _resolve(document, key)
            if isinstance(condition, dict):
                holds = all(_holds(operator, operand, value) for operator, operand in condition.items())
            else:
                holds = _equal(value, condition)
        if not holds:
            return False
    return True


def filter_document(payload: str) -> str:
    """The text a filter is judged on: the payload, or, if it holds a NUL character (which
    PostgreSQL's jsonb cannot), the same with each NUL as U+FFFD. ``deliveries.fanout`` hands
    it to PostgreSQL as the event's jsonb; ``payload_matches`` parses it."""
    if "\\u0000" not in payload:  # how the encoder writes NUL; also a cheap test of almost every payload
        return payload
    return json.dumps(_without_nul(json.loads(payload)), ensure_ascii=False)


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    return value


def payload_matches(filter_: dict[str, Any] | None, payload: str) -> bool:
    """Whether a webhook with this filter (None: none) gets an event with this payload."""
    return filter_ is None or matches(filter_, json.loads(filter_document(payload)))


# --- The compiler to a jsonpath predicate ------------------------------------------------


def compile_filter(filter_: dict[str, Any]) -> str:
    """The jsonpath predicate (strict mode) that holds exactly when ``matches`` does."""
    return f"strict {_compile(filter_, fold=False)}"


def _string(text: str) -> str:
    """A jsonpath string literal: JSON's escapes, which jsonpath reads alike."""
    return json.dumps(text, ensure_ascii=False)


def _number(value: int | float) -> str:
    # A float as its shortest repr, the decimal PostgreSQL reads from the payload's text too,
    # written out in full, without an exponent.
    return str(value) if isinstance(value, int) else format(Decimal(repr(value)), "f")


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _number(value)
    return _string(value)


def _accessor(path: str) -> str:
    return "$" + "".join(f".{_string(segment)}" for segment in path.split("."))


def _known(predicate: str) -> str:
    """``predicate`` with "unknown" made false: needed only under a negation (at the top, and
    under ``&&`` and ``||``, unknown already counts as false when the result is read)."""
    return f"(({predicate}) && !(({predicate}) is unknown))"


def _leaf(predicate: str, fold: bool) -> str:
    return _known(predicate) if fold else f"({predicate})"


def _compile(filter_: dict[str, Any], *, fold: bool) -> str:
    parts = []
    for key, condition in filter_.items():
        if key == "$and":
            parts.append("(" + " && ".join(_compile(item, fold=fold) for item in condition) + ")")
        elif key == "$or":
            parts.append("(" + " || ".join(_compile(item, fold=fold) for item in condition) + ")")
        elif key == "$not":
            parts.append(f"!({_compile(condition, fold=True)})")
        elif isinstance(condition, dict):
            parts.extend(_comparison(key, operator, operand, fold) for operator, operand in condition.items())
        else:
            parts.append(_comparison(key, "$eq", condition, fold))
    return parts[0] if len(parts) == 1 else "(" + " && ".join(parts) + ")"


def _comparison(path: str, operator: str, operand: Any, fold: bool) -> str:
    field = _accessor(path)
    if operator == "$exists":
        present = f"exists({field})"
        return _leaf(present, fold) if operand else f"!{_known(present)}"
    if operator in ("$eq", "$neq"):
        equal = f"{field} == {_literal(operand)}"
        return _leaf(equal, fold) if operator == "$eq" else f"!{_known(equal)}"
    if operator in ("$in", "$nin"):
        any_equal = " || ".join(f"{field} == {_literal(item)}" for item in operand)
        return _leaf(any_equal, fold) if operator == "$in" else f"!{_known(any_equal)}"
    if operator == "$startsWith":
        return _leaf(f"{field} starts with {_string(operand)}", fold)
    return _leaf(f"{field} {_ORDER[operator]} {_literal(operand)}", fold)
