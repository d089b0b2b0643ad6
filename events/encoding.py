"""JSON encoding that matches JavaScript byte for byte, and strict JSON parsing.

Receivers verify the documented signature by re-serializing the parsed payload with
``JSON.stringify`` and hashing that string. The signature only verifies if the bytes we
send are exactly what ``JSON.stringify(JSON.parse(body))`` produces, so :func:`js_dumps`
reproduces JavaScript's output: its key order, its number formatting and its string
escaping. Anything JavaScript cannot represent faithfully (NaN, infinities, integers
beyond the double range, lone surrogates) is refused instead of being silently altered.

Pure module: no Django imports, safe to use anywhere.
"""

from __future__ import annotations

import json
import math
import re
from json.encoder import encode_basestring
from typing import Any

__all__ = ["MAX_DEPTH", "check_json_value", "js_dumps", "parse_json_object"]

# Real event payloads are a few levels deep; the cap keeps the recursive encoder far below
# Python's recursion limit and turns a self-referencing structure into a clear error.
MAX_DEPTH = 128

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
        return _encode(value)
    except RecursionError:
        raise ValueError("JSON value is nested too deeply or contains a cycle") from None


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
            f"Payload must be a JSON object ({{...}}), got {_json_type_name(value)}"
        )
    check_json_value(value)
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (only finite numbers are allowed)")


def check_json_value(value: Any) -> None:
    """Raise ValueError if ``value`` cannot be sent as JSON that JavaScript round-trips.

    Refuses non-finite floats, integers beyond the double range, strings (keys or values)
    with lone surrogates, non-string keys, types other than dict, list, str, int, float,
    bool and None, and nesting deeper than MAX_DEPTH. The message names the location.
    """
    # Iterative, so a cycle or very deep structure becomes a ValueError, not a crash.
    stack: list[tuple[Any, str, int]] = [(value, "$", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise ValueError(f"String at {path} contains a lone surrogate, which cannot be encoded as UTF-8")
        elif item is None or isinstance(item, bool):
            pass
        elif isinstance(item, int):
            if not -_MAX_SAFE_INTEGER <= item <= _MAX_SAFE_INTEGER:
                try:
                    float(item)
                except OverflowError:
                    raise ValueError(f"Number at {path} is beyond the range of a JavaScript number") from None
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"Number at {path} is {item!r}; only finite numbers are valid JSON")
        elif isinstance(item, (dict, list)):
            if depth >= MAX_DEPTH:
                raise ValueError(f"Value at {path} is nested more than {MAX_DEPTH} levels deep (or contains a cycle)")
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
        else:
            raise ValueError(
                f"Value at {path} is a {type(item).__name__}; use dict, list, str, int, float, bool or None"
            )


def _key_path(path: str, key: str) -> str:
    if key.isidentifier() and key.isascii():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def _json_type_name(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null"
