"""js_dumps must match real JavaScript byte for byte; parse_json_object must be strict."""

from __future__ import annotations

import json
import math
import random
import struct
import subprocess
import time
from collections import OrderedDict
from enum import IntEnum
from typing import Any

import pytest

from events.encoding import (
    MAX_DEPTH,
    NestedTooDeep,
    TooManyValues,
    _encode,
    _is_plain,
    check_json_bounds,
    check_json_value,
    js_dumps,
    parse_json_object,
    pretty,
)

# Reads a JSON array of JSON texts on stdin, prints a JSON array of their re-serializations.
NODE_ROUND_TRIP = """
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const texts = JSON.parse(input);
  process.stdout.write(JSON.stringify(texts.map((x) => JSON.stringify(JSON.parse(x)))));
});
"""


def node_round_trip(values: list[Any]) -> list[str]:
    """Return JSON.stringify(JSON.parse(json.dumps(v))) from Node for each value, in one run."""
    # json.dumps keeps insertion order and exact digits (big ints, float repr), so Node
    # parses the same data Python holds; ASCII escapes keep the transport trivial.
    texts = [json.dumps(value, allow_nan=False) for value in values]
    result = subprocess.run(
        ["node", "-e", NODE_ROUND_TRIP],
        input=json.dumps(texts).encode("ascii"),
        capture_output=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout.decode("utf-8"))


def assert_matches_node(values: list[Any]) -> None:
    expected = node_round_trip(values)
    for value, js in zip(values, expected, strict=True):
        assert js_dumps(value) == js, f"value {value!r}"


FLOATS = [
    1.0,
    -0.0,
    0.0,
    1e-7,
    1.5e-7,
    1e-6,
    1.5e-6,
    1e21,
    1e20,
    1.5e20,
    123456789.125,
    0.1 + 0.2,
    5e-324,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    2.2250738585072014e-308,
    1e16,
    1.5e16,
    9007199254740993.0,
    0.0001,
    0.00001,
    -123.456e-10,
    1e100,
    4.35,
    100.0,
]

INTS = [
    0,
    -1,
    2**53,
    -(2**53),
    2**53 + 1,
    -(2**53) - 1,
    12345678901234567890,
    -12345678901234567890,
    10**21,
    10**21 - 1,
    10**22,
    2**64,
    10**300,
]

STRINGS = [
    "",
    "plain",
    "é",
    "日本",
    "emoji 😀 and 👩‍👩‍👧",
    "".join(chr(code) for code in range(0x20)),
    '"quoted" \\ back/slash',
    "\x7f del",
    "line\u2028sep\u2029para",
    "\ufeff bom \ufffd replacement \U0010ffff max",
]


def test_js_dumps_matches_node_when_scalars() -> None:
    assert_matches_node([*FLOATS, *INTS, *STRINGS, True, False, None])


def test_js_dumps_matches_node_when_keys_are_integer_like() -> None:
    keys = [
        "10",
        "2",
        "a",
        "01",
        "-1",
        "4294967295",
        "4294967294",
        "0",
        "1.5",
        " 3",
        "",
        "b",
        "٣",
        "00",
    ]
    assert_matches_node(
        [
            {key: index for index, key in enumerate(keys)},
            {key: index for index, key in enumerate(reversed(keys))},
            {"z": 1, "1": 2, "y": {"3": [1, {"2": None, "x": True}], "1": "é"}},
        ]
    )


def test_js_dumps_matches_node_when_nested_with_non_ascii() -> None:
    payload = {
        "event": "order.created",
        "données": {"prix": 12.5, "devise": "€", "日本": ["東京", {"😀": 1e21}]},
        "items": [{"qty": 1.0, "price": -0.0}, [], {}, [[[]]], "\u2028"],
        "big": 12345678901234567890,
        "ctrl\n\t": "\x00\x1f",
    }
    assert_matches_node([payload, [payload, payload]])


def random_string(rng: random.Random) -> str:
    pool = 'ab Z09"\\/\b\f\n\r\t\x00\x01\x1f\x7f\x80é日本😀\u2028\u2029\ufeff\U0001f600\uffff'
    return "".join(rng.choice(pool) for _ in range(rng.randint(0, 8)))


def random_key(rng: random.Random) -> str:
    choice = rng.random()
    if choice < 0.3:
        return str(rng.choice([0, 1, 2, 9, 10, 99, 100, 4294967294, 4294967295, rng.randint(0, 2**33)]))
    if choice < 0.4:
        return rng.choice(["01", "-1", "1.0", "1e3", "00", " 1"])
    return random_string(rng)


def random_number(rng: random.Random) -> int | float:
    choice = rng.random()
    if choice < 0.25:
        return rng.randint(-(2**70), 2**70)
    if choice < 0.5:
        return rng.randint(-1000, 1000)
    if choice < 0.75:
        return rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30)
    # Any finite double, including subnormals and extremes.
    while True:
        (number,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        if math.isfinite(number):
            return number


def random_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.random()
    if depth < 4 and choice < 0.2:
        return {random_key(rng): random_value(rng, depth + 1) for _ in range(rng.randint(0, 6))}
    if depth < 4 and choice < 0.3:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    if choice < 0.6:
        return random_number(rng)
    if choice < 0.9:
        return random_string(rng)
    return rng.choice([True, False, None])


def test_js_dumps_matches_node_when_random_structures() -> None:
    rng = random.Random(20240601)
    values = [{random_key(rng): random_value(rng) for _ in range(rng.randint(1, 8))} for _ in range(400)] + [
        random_number(rng) for _ in range(2000)
    ]
    assert_matches_node(values)


def random_plain(rng: random.Random, depth: int = 0) -> Any:
    """Values js_dumps writes with Python's C encoder: no floats, no index-like keys."""
    choice = rng.random()
    if depth < 5 and choice < 0.25:
        return {"k" + random_string(rng): random_plain(rng, depth + 1) for _ in range(rng.randint(0, 6))}
    if depth < 5 and choice < 0.4:
        return [random_plain(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    if choice < 0.6:
        return rng.randint(-(2**53), 2**53)
    if choice < 0.9:
        return random_string(rng)
    return rng.choice([True, False, None])


def test_js_dumps_matches_node_when_plain_values_take_the_c_encoder() -> None:
    rng = random.Random(20261201)
    values = [{"k": random_plain(rng), "s": STRINGS, "n": [2**53, -(2**53), 0]} for _ in range(300)]
    values += [[random_plain(rng) for _ in range(4)] for _ in range(100)]
    assert all(_is_plain(value) for value in values)
    assert_matches_node(values)
    assert all(js_dumps(value) == _encode(value) for value in values)


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1.0},
        {"1": "index-like key"},
        {"a": [2**53 + 1]},
        {"a": OrderedDict(b=1)},
        {"a": "\ud800"},
        {"a": (1,)},
        "a bare scalar",
    ],
)
def test_js_dumps_takes_the_javascript_path_when_c_encoder_would_differ(value: Any) -> None:
    assert not _is_plain(value)


def test_check_json_bounds_counts_values_and_levels_when_given_parsed_json() -> None:
    value = {"a": [1, {"b": None}], "c": "x"}  # 6 values, 3 levels
    check_json_bounds(value, max_depth=3, max_values=6)
    with pytest.raises(TooManyValues, match="more than 5 values"):
        check_json_bounds(value, max_depth=3, max_values=5)
    with pytest.raises(NestedTooDeep, match="more than 2 levels"):
        check_json_bounds(value, max_depth=2, max_values=6)
    check_json_bounds("scalar", max_depth=0, max_values=1)


def test_check_json_value_refuses_when_deeper_than_its_max_depth() -> None:
    value: Any = {}
    for _ in range(9):
        value = {"a": value}  # 10 levels
    check_json_value(value, max_depth=10)
    with pytest.raises(ValueError, match=r"^Value at \$\.a\.a\.a\.a\.a\.a\.a\.a\.a is nested more than 9 levels"):
        check_json_value(value, max_depth=9)


def test_check_json_value_names_location_when_a_subclass_or_root_is_refused() -> None:
    class Name(str):
        pass

    with pytest.raises(ValueError, match=r"String at \$\.list\[2\] contains a lone surrogate"):
        check_json_value({"list": [1, "ok", Name("\udc00")]})
    with pytest.raises(ValueError, match=r"Value at \$ is a bytes"):
        check_json_value(b"root")
    with pytest.raises(ValueError, match=r"Number at \$\.n\[0\]\.m is beyond"):
        check_json_value({"n": [OrderedDict(m=10**400)]})


def test_js_dumps_accepts_subclasses_when_enum_or_ordered_dict() -> None:
    class Level(IntEnum):
        HIGH = 3

    assert js_dumps(OrderedDict([("b", Level.HIGH), ("1", [Level.HIGH])])) == '{"1":[3],"b":3}'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        ({"a": [math.nan]}, "nan"),
        (10**400, "beyond the range"),
        ("\ud800", "lone surrogate"),
        ({"\udfff": 1}, "lone surrogate"),
        ({1: "a"}, "keys must be strings"),
        ({("a",): 1}, "keys must be strings"),
        ((1, 2), "tuple"),
        ({"a": {1, 2}}, "set"),
        (b"bytes", "bytes"),
    ],
)
def test_js_dumps_refuses_when_value_not_representable(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        js_dumps(value)
    with pytest.raises(ValueError, match=message):
        check_json_value(value)


def test_js_dumps_refuses_when_cyclic() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(ValueError, match="cycle"):
        js_dumps(cyclic)
    with pytest.raises(ValueError, match="cycle"):
        check_json_value(cyclic)


def test_check_json_value_names_location_when_refusing() -> None:
    with pytest.raises(ValueError, match=r"\$\.data\.items\[1\]"):
        check_json_value({"data": {"items": [1.0, math.inf]}})
    with pytest.raises(ValueError, match=r'\$\["a b"\]'):
        check_json_value({"a b": "\ud83d"})


def test_check_json_value_accepts_when_valid() -> None:
    check_json_value({"a": [1, 2.5, "é😀", None, True, {"1": 12345678901234567890}]})


def test_parse_json_object_round_trips_when_node_output() -> None:
    text = '{"b":1,"10":[1.5e-7,"\\u00e9\\ud83d\\ude00"],"a":null}'
    [expected] = node_round_trip([json.loads(text)])
    assert js_dumps(parse_json_object(text)) == expected
    assert js_dumps(parse_json_object(text.encode("utf-8"))) == expected
    assert parse_json_object(expected.encode("utf-8")) == parse_json_object(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "Malformed JSON"),
        ('{"a": 1,}', "Malformed JSON"),
        ("{'a': 1}", "Malformed JSON"),
        ('{"a": 01}', "Malformed JSON"),
        ('{"a": 1} x', "Malformed JSON"),
        ('{"a": "tab\tinside"}', "Malformed JSON"),
        ('{"a": NaN}', "NaN"),
        ('{"a": Infinity}', "Infinity"),
        ('{"a": [-Infinity]}', "-Infinity"),
        ('{"a": 1e400}', "only finite"),
        ('{"a": "\\ud800"}', "surrogate"),
        ('{"a": ["x\\udc00y"]}', "surrogate"),
        ('{"\\ud800": 1}', "surrogate"),
        ('{"a": "\\ude00\\ud83d"}', "surrogate"),
        ("[1, 2]", "must be a JSON object"),
        ('"text"', "must be a JSON object"),
        ("null", "must be a JSON object"),
        ("12", "must be a JSON object"),
        ("", "Malformed JSON"),
        ("\ufeff{}", "Malformed JSON"),
        ('{"a": ' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1), "nested"),
        ('{"a": ' + "[" * 5000 + "]" * 5000 + "}", "nested"),
        ('{"a": ' + "9" * 5000 + "}", "Malformed JSON"),
    ],
)
def test_parse_json_object_refuses_when_invalid(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_json_object(text)


def test_parse_json_object_refuses_when_bytes_not_utf8() -> None:
    with pytest.raises(ValueError, match="not valid UTF-8"):
        parse_json_object(b'{"a": "\xe9"}')


def test_parse_json_object_accepts_when_surrogate_pair_escaped() -> None:
    assert parse_json_object('{"a": "\\ud83d\\ude00", "n": 1e308}') == {
        "a": "😀",
        "n": 1e308,
    }


def test_checks_stop_at_a_bound_when_python_values_share_or_contain_themselves() -> None:
    shared: Any = [0]
    for _ in range(22):
        shared = [shared, shared]  # 23 lists, 4 million references written out
    small: Any = [0]
    for _ in range(12):
        small = [small, small]
    cyclic: dict[str, Any] = {}
    cyclic["a"] = cyclic
    cyclic["b"] = cyclic  # each level of a walk would hold twice as many as the last
    started = time.monotonic()

    with pytest.raises(ValueError, match="more than 1000000 objects and arrays"):
        check_json_value(shared)
    assert not _is_plain(shared)
    check_json_value(small)
    assert _is_plain(small)
    with pytest.raises(ValueError, match="cycle"):
        check_json_value(cyclic)
    assert not _is_plain(cyclic)
    with pytest.raises(ValueError, match="cycle"):
        js_dumps(cyclic)

    assert time.monotonic() - started < 10


def test_pretty_indents_and_keeps_non_ascii_when_given_a_payload():
    payload = {"event": "threat.detected", "data": {"user": "zoë@example.com", "tags": ["a"]}}

    text = pretty(payload)

    assert text.splitlines() == [
        "{",
        '  "event": "threat.detected",',
        '  "data": {',
        '    "user": "zoë@example.com",',
        '    "tags": [',
        '      "a"',
        "    ]",
        "  }",
        "}",
    ]
    assert json.loads(text) == payload
