"""JSON encoding that matches JavaScript byte for byte, strict JSON parsing, and
JavaScript's timestamp format (``iso_timestamp``).

Receivers verify the documented signature by re-serializing the parsed payload with
``JSON.stringify`` and hashing that string. The signature only verifies if the bytes we
send are exactly what ``JSON.stringify(JSON.parse(body))`` produces, so :func:`js_dumps`
reproduces JavaScript's output: its key order, its number formatting and its string
escaping. Anything JavaScript cannot represent faithfully (NaN, infinities, integers
beyond the double range, lone surrogates) is refused instead of being silently altered.

Pure module: no Django imports, safe to use anywhere. Long for one job: the encoder, the
checks and the parser answer to one rule (what survives JavaScript unchanged) and are tested
together against Node.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "NestedTooDeep",
    "TooManyValues",
    "check_json_bounds",
    "check_json_value",
    "iso_timestamp",
    "js_dumps",
    "parse_json_object",
    "pretty",
]

# Real event payloads are a few levels deep; the cap keeps the recursive encoder far below
# Python's recursion limit and turns a self-referencing structure into a clear error.
MAX_DEPTH = 128

# More objects and arrays than a payload of a few megabytes can hold ("[]," is 3 bytes). The
# level-at-a-time walks stop here: a Python value (never parsed JSON) can share a container,
# and one that contains itself twice would otherwise double the walk at every level.
MAX_CONTAINERS = 1_000_000

# Integers up to 2**53 are exact in a double, so JavaScript prints them digit for digit.
_MAX_SAFE_INTEGER = 2**53

# Property keys that are "array indices" (canonical decimal strings of 0 .. 2**32 - 2) are
# listed first, in ascending numeric order, by every JavaScript engine (ECMAScript
# OrdinaryOwnPropertyKeys); all other keys keep insertion order.
_MAX_ARRAY_INDEX = 2**32 - 2

# Python's str can hold surrogate code points that JSON.parse would only produce from a
# lone "\ud800"-style escape. They cannot be encoded as UTF-8, so they cannot be sent.
_SURROGATE = re.compile("[\ud800-\udfff]")


def js_dumps(value: Any) -> str:
    """Serialize ``value`` exactly as ``JSON.stringify(JSON.parse(json))`` would.

    Accepts dict (str keys), list, str, int, float, bool and None (and subclasses of them).
    Raises ValueError for what :func:`check_json_value` refuses (only the depth limit is
    left to Python's recursion limit), so output always survives JavaScript unchanged.
    """
    try:
        if _is_plain(value):
            return _PLAIN.encode(value)
        return _encode(value)
    except RecursionError:
        raise ValueError("JSON value is nested too deeply or contains a cycle") from None


def iso_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``, as JavaScript's ``toISOString``."""
    utc = moment.astimezone(UTC)
    # Formatted by hand: strftime took twice as long, and this runs for every event and send.
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
        f".{utc.microsecond // 1000:03d}Z"
    )


# For values holding only what Python's C encoder already writes as JavaScript does: exact
# dicts (keys that cannot be array indices, so insertion order is JavaScript's order too),
# lists, strings without lone surrogates (the same C string encoder as _encode_str), integers
# JavaScript holds exactly, booleans and None. Anything else (floats above all) takes _encode.
_PLAIN = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False, allow_nan=False)


def _is_plain(value: Any) -> bool:
    """True if ``_PLAIN`` writes ``value`` byte for byte as ``_encode`` would, several times faster."""
    if type(value) is not dict and type(value) is not list:
        return False  # a bare scalar: nothing to gain
    level = [value]
    depth = 0
    read = 1
    while level:
        if depth >= MAX_DEPTH:
            return False  # _encode reports depth and cycles
        containers: list[Any] = []
        for item in level:
            children: Iterable[Any]
            if type(item) is dict:
                for key in item:
                    if type(key) is not str or "0" <= key[:1] <= "9":
                        return False
                    if not key.isascii() and _SURROGATE.search(key):
                        return False
                children = item.values()
            else:
                children = item
            for child in children:
                kind = type(child)
                if kind is str:
                    if not child.isascii() and _SURROGATE.search(child):
                        return False
                elif kind is int:
                    if not -_MAX_SAFE_INTEGER <= child <= _MAX_SAFE_INTEGER:
                        return False
                elif kind is dict or kind is list:
                    containers.append(child)
                elif child is not None and kind is not bool:
                    return False
        read += len(containers)
        if read > MAX_CONTAINERS:
            return False  # shared or cyclic, if not simply too large: _encode reports it
        level = containers
        depth += 1
    return True


def _encode(value: Any) -> str:
    # Exact type checks first: they are the common case and much cheaper than isinstance.
    kind = type(value)
    if kind is str:
        return _encode_str(value)
    if kind is dict:
        return _encode_dict(value)
    if kind is int:
        if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
            return int.__repr__(value)
        return _format_number(_int_to_double(value))
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is list:
        return "[" + ",".join([_encode(item) for item in value]) + "]"
    if kind is float:
        return _format_number(value)
    return _encode(_to_base_type(value))


def _encode_str(text: str) -> str:
    # isascii() is O(1) in CPython, so ASCII text skips the surrogate scan.
    if not text.isascii() and _SURROGATE.search(text):
        raise ValueError(f"string {text[:40]!r} contains a lone surrogate; it cannot be UTF-8 encoded")
    # The C encoder escapes exactly what JSON.stringify escapes for well-formed text
    # (quote, backslash, \b \f \n \r \t, other C0 controls as lowercase \u00XX).
    return encode_basestring(text)


def _encode_dict(mapping: dict[Any, Any]) -> str:
    entries: list[str] = []
    indexed: list[tuple[int, str]] | None = None
    for key, item in mapping.items():
        if type(key) is not str:
            key = _to_str_key(key)
        entry = _encode_str(key) + ":" + _encode(item)
        # Cheap first-character test keeps the exact index check off the common path.
        if "0" <= key[:1] <= "9" and _is_array_index(key):
            if indexed is None:
                indexed = []
            indexed.append((int(key), entry))
        else:
            entries.append(entry)
    if indexed:
        # Canonical index strings are unique integers, so the sort never compares entries.
        indexed.sort()
        entries = [entry for _, entry in indexed] + entries
    return "{" + ",".join(entries) + "}"


def _is_array_index(key: str) -> bool:
    return (
        key.isascii()
        and key.isdigit()
        and (key[0] != "0" or len(key) == 1)
        and (len(key) < 10 or int(key) <= _MAX_ARRAY_INDEX)
    )


def _int_to_double(value: int) -> float:
    try:
        # float(int) rounds to nearest, ties to even: the same double JSON.parse yields.
        return float(value)
    except OverflowError:
        raise ValueError(f"integer of {value.bit_length()} bits is beyond the range of a JavaScript number") from None


def _format_number(value: float) -> str:
    """Format a double as ECMAScript Number::toString does."""
    text = float.__repr__(value)
    if "e" not in text:
        # repr is positional only for 1e-4 <= |x| < 1e16, well inside JavaScript's
        # positional range, and both pick the same shortest round-trip digits.
        if text.endswith(".0"):
            text = text[:-2]
            return "0" if text == "-0" else text
        if text in ("nan", "inf", "-inf"):
            raise ValueError(f"{text} is not valid JSON; JavaScript would turn it into null")
        return text
    mantissa, _, exp_text = text.partition("e")
    sign = ""
    if mantissa[0] == "-":
        sign, mantissa = "-", mantissa[1:]
    digits = mantissa.replace(".", "")
    exponent = int(exp_text)
    # ECMAScript names: value = 0.<digits> * 10**point, with k significant digits.
    point = exponent + 1
    k = len(digits)
    if k <= point <= 21:
        out = digits + "0" * (point - k)
    elif 0 < point <= 21:
        out = digits[:point] + "." + digits[point:]
    elif -6 < point <= 0:
        out = "0." + "0" * -point + digits
    else:
        fraction = "." + digits[1:] if k > 1 else ""
        out = f"{digits[0]}{fraction}e{'+' if exponent >= 0 else '-'}{abs(exponent)}"
    return sign + out


def pretty(value: Any) -> str:
    """``value`` indented for people to read (pages, the listener): never what is sent or signed.

    Non-ASCII characters are kept as they are, so a payload reads as its receiver sees it.
    """
    return json.dumps(value, indent=2, ensure_ascii=False)


def _to_base_type(value: Any) -> Any:
    """Map subclasses (IntEnum, OrderedDict, ...) to their plain JSON type, or refuse."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):  # bool cannot be subclassed, so this is never a bool
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    raise ValueError(f"{type(value).__name__} is not a JSON type (use dict, list, str, int, float, bool or None)")


def _to_str_key(key: Any) -> str:
    if isinstance(key, str):
        return str.__str__(key)
    raise ValueError(f"object keys must be strings, got {type(key).__name__} {key!r}")


def parse_json_object(text: str | bytes) -> dict[str, Any]:
    """Parse an incoming payload strictly; the top level must be a JSON object.

    Stricter than ``json.loads``: bytes must be UTF-8, and NaN/Infinity literals, numbers
    that overflow a double, lone surrogate escapes and over-deep nesting are refused, since
    none of them survive a trip through JavaScript or UTF-8. Raises ValueError with a
    message meant for the API client.
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"Payload is not valid UTF-8 (bad byte at offset {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"Malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ValueError(f"Malformed JSON: nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:
        # _refuse_constant, and int() refusing numbers with thousands of digits.
        raise ValueError(f"Malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        # ValueError, not TypeError: callers handle every payload problem the same way.
        raise ValueError(  # noqa: TRY004
            f"Payload must be a JSON object ({{...}}), got {json_type_name(value)}"
        )
    check_json_value(value)
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (only finite numbers are allowed)")


def check_json_value(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise ValueError if ``value`` cannot be sent as JSON that JavaScript round-trips.

    Refuses non-finite floats, integers beyond the double range, strings (keys or values)
    with lone surrogates, non-string keys, types other than dict, list, str, int, float,
    bool and None, and nesting deeper than ``max_depth``. The message names the location.

    A quick pass says whether anything is wrong, and only then does a second one, which keeps
    track of where it is, find the problem and name it: a 1 MB body can hold hundreds of
    thousands of values, and spelling out the location of each cost about a second.
    """
    if _has_problem(value, max_depth):
        _raise_first_problem(value, max_depth)
        raise ValueError(
            f"Value holds more than {MAX_CONTAINERS} objects and arrays, counting each time one is shared "
            "(or contains a cycle)"
        )


def _has_problem(value: Any, max_depth: int) -> bool:
    """True if :func:`_raise_first_problem` would raise; one level at a time, nothing allocated
    per value but the next level's list of containers."""
    level = [value]
    depth = 0
    read = 1
    while level:
        containers: list[Any] = []
        for item in level:
            children: Iterable[Any]
            if isinstance(item, dict):
                for key in item:
                    if type(key) is not str and not isinstance(key, str):
                        return True
                    if not key.isascii() and _SURROGATE.search(key):
                        return True
                children = item.values()
            elif isinstance(item, list):
                children = item
            else:
                if _is_unsendable_scalar(item):  # the top level, or a subclass left for here
                    return True
                continue
            if depth >= max_depth:
                return True
            for child in children:
                kind = type(child)
                if kind is str:
                    if not child.isascii() and _SURROGATE.search(child):
                        return True
                elif kind is int:
                    if not -_MAX_SAFE_INTEGER <= child <= _MAX_SAFE_INTEGER and _is_unsendable_scalar(child):
                        return True
                elif kind is float:
                    if not math.isfinite(child):
                        return True
                elif child is not None and kind is not bool:
                    containers.append(child)  # containers, subclasses and what is not JSON at all
        read += len(containers)
        if read > MAX_CONTAINERS:
            return True
        level = containers
        depth += 1
    return False


def _is_unsendable_scalar(item: Any) -> bool:
    if isinstance(item, str):
        return _SURROGATE.search(item) is not None
    if item is None or isinstance(item, bool):
        return False
    if isinstance(item, int):
        if -_MAX_SAFE_INTEGER <= item <= _MAX_SAFE_INTEGER:
            return False
        try:
            float(item)
        except OverflowError:
            return True
        return False
    if isinstance(item, float):
        return not math.isfinite(item)
    return True


def _raise_first_problem(value: Any, max_depth: int) -> None:
    """The same rules as :func:`_has_problem`, raising ValueError at the first value that breaks
    one with its location (``$.data.items[1]``)."""
    stack: list[tuple[Any, str, int]] = [(value, "$", 0)]
    read: set[tuple[int, int]] = set()  # (container, depth) pairs already read: sharing costs nothing twice
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if (id(item), depth) in read:
                continue
            read.add((id(item), depth))
            if depth >= max_depth:
                raise ValueError(f"Value at {path} is nested more than {max_depth} levels deep (or contains a cycle)")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        # ValueError like every other refusal here, so one except suffices.
                        raise ValueError(  # noqa: TRY004
                            f"Object at {path} has a non-string key {key!r}; JSON keys must be strings"
                        )
                    child_path = _key_path(path, key)
                    if _SURROGATE.search(key):
                        raise ValueError(
                            f"Key {child_path} contains a lone surrogate, which cannot be encoded as UTF-8"
                        )
                    stack.append((child, child_path, depth + 1))
            else:
                stack.extend((child, f"{path}[{index}]", depth + 1) for index, child in enumerate(item))
        elif _is_unsendable_scalar(item):
            if isinstance(item, str):
                raise ValueError(f"String at {path} contains a lone surrogate, which cannot be encoded as UTF-8")
            if isinstance(item, float):
                raise ValueError(f"Number at {path} is {item!r}; only finite numbers are valid JSON")
            if isinstance(item, int):
                raise ValueError(f"Number at {path} is beyond the range of a JavaScript number")
            raise ValueError(
                f"Value at {path} is a {type(item).__name__}; use dict, list, str, int, float, bool or None"
            )


class NestedTooDeep(ValueError):
    """JSON nested deeper than allowed."""


class TooManyValues(ValueError):
    """JSON holding more values than allowed."""


def check_json_bounds(value: Any, *, max_depth: int, max_values: int) -> None:
    """Raise NestedTooDeep if parsed JSON nests deeper than ``max_depth``, TooManyValues if it
    holds more than ``max_values`` values (objects, arrays, strings, numbers, booleans, nulls).

    Meant for what ``json.loads`` just returned, before anything else walks it: it reads
    one level at a time, in C-speed list operations, and stops at the first level that
    crosses a bound, so a body made to be expensive costs little more than its parse.
    """
    level = [value]
    depth = 0
    count = 0
    while level:
        count += len(level)
        if count > max_values:
            raise TooManyValues(f"JSON holds more than {max_values} values")
        containers = [item for item in level if type(item) is dict or type(item) is list]
        if not containers:
            return
        depth += 1
        if depth > max_depth:
            raise NestedTooDeep(f"JSON is nested more than {max_depth} levels deep")
        level = []
        for container in containers:
            level.extend(container.values() if type(container) is dict else container)


def _key_path(path: str, key: str) -> str:
    if key.isidentifier() and key.isascii():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def json_type(value: Any) -> str | None:
    """A parsed JSON value's type as JSON Schema and PostgreSQL's jsonpath name it: "object",
    "array", "string", "boolean", "number", "null"; None for what JSON cannot hold."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return None


_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "boolean": "a boolean",
    "number": "a number",
}


def json_type_name(value: Any) -> str:
    """What a parsed JSON value is, for a message: "an object", "an array", ..., "null"."""
    return _TYPE_NAMES.get(json_type(value) or "null", "null")
