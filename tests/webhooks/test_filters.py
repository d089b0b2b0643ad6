"""Payload filters: one table of cases through both evaluators — ``webhooks.filters.matches`` (the
truth) and the compiled jsonpath predicate in PostgreSQL's ``jsonb_path_match``, as the fan-out
runs it — and the validator's named errors."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from webhooks.filters import (
    EXAMPLES,
    FilterError,
    compile_filter,
    filter_document,
    matches,
    payload_matches,
    validate_filter,
)

ENVELOPE = {
    "id": "evt_01",
    "event": "threat.detected",
    "timestamp": "2025-01-15T10:30:00.000Z",
    "organization_id": "org_1",
    "data": {
        "threat_id": "thr_1",
        "severity": "critical",
        "score": 7.5,
        "count": 3,
        "zero": 0,
        "flag": True,
        "off": False,
        "nothing": None,
        "numeric_text": "3",
        "tags": ["a", "b"],
        "agent": {"id": "agt_1", "hostname": "laptop", "group": {"name": "finance"}},
        "details": {"blocked": True, "path": "/home/user/.env"},
        "unicode": "Zürich 東京 😀",
        "empty": "",
        "list_of_objects": [{"id": "x"}],
        "dotted.key": "x",
        "big": 12345678901234567890,
        "small": 0.1,
        "negative": -2,
    },
}

# (filter, matches ENVELOPE)
CASES = [
    # bare values are $eq; several keys must all hold
    ({"event": "threat.detected"}, True),
    ({"event": "threat.blocked"}, False),
    ({"event": "threat.detected", "data.severity": "critical"}, True),
    ({"event": "threat.detected", "data.severity": "high"}, False),
    # nested paths
    ({"data.agent.group.name": "finance"}, True),
    ({"data.agent.group.name": "sales"}, False),
    ({"data.details.blocked": True}, True),
    # missing fields, and paths through non-objects
    ({"data.missing": "x"}, False),
    ({"data.missing": None}, False),
    ({"data.missing.deeper": "x"}, False),
    ({"data.severity.deeper": "x"}, False),
    ({"data.tags.0": "a"}, False),
    ({"data.list_of_objects.id": "x"}, False),
    ({"data.dotted.key": "x"}, False),
    ({"data.missing": {"$neq": "x"}}, True),
    ({"data.missing": {"$nin": ["x", "y"]}}, True),
    ({"data.missing": {"$exists": False}}, True),
    ({"data.missing": {"$exists": True}}, False),
    ({"data.missing": {"$gt": 1}}, False),
    ({"data.missing": {"$startsWith": ""}}, False),
    ({"data.missing.deeper": {"$exists": False}}, True),
    ({"data.severity.deeper": {"$exists": False}}, True),
    # null
    ({"data.nothing": None}, True),
    ({"data.nothing": {"$eq": None}}, True),
    ({"data.nothing": {"$neq": None}}, False),
    ({"data.nothing": {"$exists": True}}, True),
    ({"data.severity": None}, False),
    ({"data.severity": {"$neq": None}}, True),
    ({"data.nothing": {"$in": ["x", None]}}, True),
    ({"data.nothing": {"$gt": 0}}, False),
    ({"data.nothing": {"$lt": "z"}}, False),
    # numbers vs strings vs booleans
    ({"data.count": 3}, True),
    ({"data.count": 3.0}, True),
    ({"data.count": "3"}, False),
    ({"data.numeric_text": 3}, False),
    ({"data.numeric_text": "3"}, True),
    ({"data.flag": True}, True),
    ({"data.flag": 1}, False),
    ({"data.zero": False}, False),
    ({"data.off": 0}, False),
    ({"data.off": False}, True),
    ({"data.count": {"$neq": "3"}}, True),
    ({"data.count": {"$gt": 2}}, True),
    ({"data.count": {"$gt": 3}}, False),
    ({"data.count": {"$gte": 3}}, True),
    ({"data.count": {"$lt": 3.5}}, True),
    ({"data.count": {"$lte": 2.999}}, False),
    ({"data.count": {"$gt": "2"}}, False),
    ({"data.numeric_text": {"$gt": 2}}, False),
    ({"data.numeric_text": {"$lt": "4"}}, True),
    ({"data.flag": {"$gt": 0}}, False),
    ({"data.score": {"$gte": 7.5, "$lt": 8}}, True),
    ({"data.score": {"$gt": 7.5}}, False),
    ({"data.negative": {"$lt": -1}}, True),
    ({"data.negative": {"$gt": -2.5}}, True),
    ({"data.small": 0.1}, True),
    ({"data.small": {"$gt": 0.1}}, False),
    ({"data.small": {"$lt": 0.10000000000000002}}, True),
    ({"data.big": 12345678901234567890}, True),
    ({"data.big": {"$gt": 12345678901234567889}}, True),
    ({"data.count": {"$gt": 1e-7}}, True),
    ({"data.count": {"$lt": 1e21}}, True),
    # strings: ordering by code point, prefixes, unicode
    ({"data.severity": {"$gt": "b"}}, True),
    ({"data.severity": {"$gt": "critical"}}, False),
    ({"data.severity": {"$gte": "critical"}}, True),
    ({"data.severity": {"$lt": "Critical"}}, False),
    ({"data.unicode": "Zürich 東京 😀"}, True),
    ({"data.unicode": "Zurich 東京 😀"}, False),
    ({"data.unicode": {"$startsWith": "Zür"}}, True),
    ({"data.unicode": {"$startsWith": "Zu"}}, False),
    ({"data.unicode": {"$gt": "Zürich 東京"}}, True),
    ({"data.unicode": {"$lt": "Zürich 東京 \U0001f601"}}, True),
    ({"data.unicode": {"$lt": "Zürich 東京 \uffff"}}, False),
    ({"data.empty": ""}, True),
    ({"data.empty": {"$startsWith": ""}}, True),
    ({"data.details.path": {"$startsWith": "/home/"}}, True),
    ({"data.details.path": {"$startsWith": "/root/"}}, False),
    ({"data.count": {"$startsWith": "3"}}, False),
    ({'data.quote"d': "x"}, False),
    # arrays and objects are never equal to a value, nor unwrapped
    ({"data.tags": "a"}, False),
    ({"data.tags": {"$in": ["a", "b"]}}, False),
    ({"data.tags": {"$neq": "a"}}, True),
    ({"data.tags": {"$exists": True}}, True),
    ({"data.tags": {"$gt": "a"}}, False),
    ({"data.agent": {"$neq": None}}, True),
    ({"data.agent": {"$exists": True}}, True),
    # $in / $nin
    ({"data.severity": {"$in": ["high", "critical"]}}, True),
    ({"data.severity": {"$in": ["low", "medium"]}}, False),
    ({"data.severity": {"$nin": ["low", "medium"]}}, True),
    ({"data.severity": {"$nin": ["high", "critical"]}}, False),
    ({"data.count": {"$in": ["3", 3]}}, True),
    ({"data.count": {"$in": ["3", True]}}, False),
    # $exists on present values
    ({"data.severity": {"$exists": True}}, True),
    ({"data.severity": {"$exists": False}}, False),
    # $and / $or / $not
    ({"$or": [{"event": "threat.blocked"}, {"data.details.blocked": True}]}, True),
    ({"$or": [{"event": "threat.blocked"}, {"data.details.blocked": False}]}, False),
    ({"$or": [{"data.missing": "x"}, {"data.severity": "critical"}]}, True),
    ({"$and": [{"event": "threat.detected"}, {"data.severity": "critical"}]}, True),
    ({"$and": [{"event": "threat.detected"}, {"data.severity": "low"}]}, False),
    ({"$not": {"data.severity": "low"}}, True),
    ({"$not": {"data.severity": "critical"}}, False),
    ({"$not": {"data.missing": "x"}}, True),
    ({"$not": {"data.count": "3"}}, True),
    ({"$not": {"data.tags": {"$gt": "a"}}}, True),
    ({"$not": {"data.missing": {"$neq": "x"}}}, False),
    ({"$not": {"$not": {"data.missing": "x"}}}, False),
    ({"$not": {"$or": [{"data.missing": "x"}, {"data.count": "3"}]}}, True),
    ({"$not": {"$and": [{"data.missing": {"$exists": False}}, {"data.severity": "critical"}]}}, False),
    ({"$not": {"data.severity": {"$startsWith": "crit"}}}, False),
    ({"$not": {"data.count": {"$startsWith": "3"}}}, True),
    ({"$not": {"data.severity": {"$in": ["x", "critical"]}}}, False),
    ({"$not": {"data.missing": {"$in": ["x", "critical"]}}}, True),
    ({"$or": [{"$not": {"data.missing": {"$gt": 1}}}, {"data.missing": "x"}]}, True),
    ({"event": "threat.detected", "$not": {"data.severity": {"$in": ["low", "medium"]}}}, True),
    # the examples offered by the dashboard
    *[(example, True) for example in EXAMPLES.values()],
]


def _case_id(case: tuple) -> str:
    return json.dumps(case[0], ensure_ascii=False)


def _sql_matches(filter_: dict, document: str) -> bool:
    """As a WHERE clause reads it: true, or not (false, or null for unknown)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT jsonb_path_match(%s::jsonb, %s::jsonpath, '{}', true) IS TRUE", [document, compile_filter(filter_)]
        )
        return cursor.fetchone()[0]


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_python_evaluator_matches_the_table(case):
    filter_, expected = case
    assert validate_filter(filter_) is filter_
    assert matches(filter_, ENVELOPE) is expected


@pytest.mark.django_db
def test_postgresql_predicate_agrees_with_the_table():
    document = json.dumps(ENVELOPE, ensure_ascii=False)
    disagreements = [
        (filter_, expected, got)
        for filter_, expected in CASES
        if (got := _sql_matches(filter_, document)) is not expected
    ]
    assert disagreements == []


@pytest.mark.django_db
def test_a_nul_character_reads_as_replacement_in_both():
    payload = json.dumps({"event": "x", "data": {"name": "a\x00b", "k\x00": 1}})
    document = filter_document(payload)
    assert json.loads(document)["data"] == {"name": "a\ufffdb", "k\ufffd": 1}
    for filter_, expected in [({"data.name": "a\ufffdb"}, True), ({"data.name": {"$startsWith": "a"}}, True)]:
        assert payload_matches(filter_, payload) is expected
        assert _sql_matches(filter_, document) is expected
    assert filter_document('{"data":"no nul"}') == '{"data":"no nul"}'


@pytest.mark.parametrize(
    ("filter_", "path", "message"),
    [
        ({"data.severity": {"$in": "critical"}}, "data.severity.$in", "expected a list"),
        ({"data.severity": {"$in": []}}, "data.severity.$in", "expected a non-empty list"),
        ({"data.severity": {"$in": ["a", ["b"]]}}, "data.severity.$in[1]", "expected a string, number"),
        ({"data.severity": {"$regex": "^c"}}, "data.severity.$regex", "unknown operator"),
        ({"data.severity": {"$gt": True}}, "data.severity.$gt", "expected a number or a string"),
        ({"data.severity": {"$exists": 1}}, "data.severity.$exists", "expected true or false"),
        ({"data.severity": {"$startsWith": 1}}, "data.severity.$startsWith", "expected a string"),
        ({"data.severity": {"$eq": {"a": 1}}}, "data.severity.$eq", "expected a string, number"),
        ({"data.severity": ["high"]}, "data.severity", 'use {"$in": [...]}'),
        ({"data.severity": {}}, "data.severity", "expected at least one operator"),
        ({"data.agent": {"id": "x"}}, "data.agent.id", "write its dotted path"),
        ({"data.severity": {"$and": []}}, "data.severity.$and", "not allowed inside"),
        ({"$eq": 1}, "$eq", "expected a field path before it"),
        ({"$foo": 1}, "$foo", "unknown operator"),
        ({"$or": {"a": 1}}, "$or", "expected a non-empty list of filters"),
        ({"$or": []}, "$or", "expected a non-empty list of filters"),
        ({"$or": [{"a": 1}, "b"]}, "$or[1]", "expected a JSON object"),
        ({"$not": {}}, "$not", "expected at least one condition"),
        ({"$and": [{"$or": [{"x..y": 1}]}]}, "$and[0].$or[0].x..y", "dotted path"),
        ({"data.$x": 1}, "data.$x", "may not start with $"),
        ({"data.x": "a\x00"}, "data.x", "NUL"),
        ({"data.x": float("nan")}, "data.x", "finite"),
        ({"a" + ".a" * 70: 1}, "a" + ".a" * 70, "JSON_MAX_DEPTH"),
        ("data.severity", "", "expected a JSON object"),
        ([{"a": 1}], "", "expected a JSON object"),
        ({}, "", "send null to remove the filter"),
    ],
)
def test_invalid_filter_is_refused_naming_path_and_operator(filter_, path, message):
    with pytest.raises(FilterError) as refused:
        validate_filter(filter_)
    assert refused.value.path == path
    assert message in refused.value.message


def test_filter_limits_are_the_settings(settings):
    settings.WEBHOOK_FILTER_MAX_DEPTH = 2
    validate_filter({"$not": {"$not": {"a": 1}}})
    with pytest.raises(FilterError) as refused:
        validate_filter({"$not": {"$not": {"$not": {"a": 1}}}})
    assert refused.value.path == "$not.$not.$not"
    assert "WEBHOOK_FILTER_MAX_DEPTH" in refused.value.message
    settings.WEBHOOK_FILTER_MAX_BYTES = 40
    with pytest.raises(FilterError) as refused:
        validate_filter({"data.severity": {"$in": ["low", "medium", "high"]}})
    assert refused.value.path == ""
    assert "WEBHOOK_FILTER_MAX_BYTES" in refused.value.message
