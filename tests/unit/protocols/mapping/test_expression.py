"""The tiny expression language: arithmetic over field paths, no eval, errors that name the spot."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.core.errors import ProtocolViolation
from protocols.mapping.expression import Expression
from protocols.mapping.json_path import JsonPath

DOC = {"ENERGY": {"Current": 0.392, "Total": 514.153}, "t": [{"f": 212}], "zero": 0, "name": "x"}


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("10 / 4", 2.5),
        ("-3 - -2", -1.0),
        ("ENERGY.Current * 1000", 392.0),
        ("(t[0].f - 32) * 5 / 9", 100.0),
        ("ENERGY.Total*1000", 514153.0),
        ("1e3 / 4", 250.0),
    ],
)
def test_evaluates(source: str, value: float) -> None:
    assert Expression(source).evaluate(DOC) == pytest.approx(value)


def test_variables_shadow_fields() -> None:
    assert Expression("level * 255 / 100").evaluate({}, {"level": 100.0}) == 255.0


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "empty"),
        ("1 +", "ends too early"),
        ("(1 + 2", "missing '\\)'"),
        ("1 2", "unexpected '2' at position 2"),
        ("__import__('os')", "unexpected"),
        ("a ** 2", "unexpected '\\*' at position 3"),
        ("a; b", "unexpected ';"),
        ("x" * 501, "longer than 500"),
    ],
)
def test_syntax_errors(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Expression(source)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing + 1", "no 'missing' in \\$"),
        ("name * 2", "name must be a number"),
        ("1 / zero", "division by zero"),
        ("t[3].f", "no item \\[3\\]"),
    ],
)
def test_runtime_errors_are_protocol_violations(source: str, message: str) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        Expression(source).evaluate(DOC)


def test_paths_lists_what_it_reads() -> None:
    assert Expression("(a.b - c[0]) * 2").paths == (JsonPath("a.b"), JsonPath("c[0]"))


@given(st.integers(-1000, 1000), st.integers(-1000, 1000), st.integers(1, 1000))
def test_agrees_with_python_arithmetic(a: int, b: int, c: int) -> None:
    doc = {"a": a, "b": b, "c": c}
    assert Expression("(a + b) * c - a / c").evaluate(doc) == pytest.approx((a + b) * c - a / c)


def test_an_integer_beyond_floats_is_a_violation() -> None:
    with pytest.raises(ProtocolViolation, match="out of range"):
        Expression("a * 2").evaluate({"a": 10**400})


@pytest.mark.parametrize("source", ["(" * 40 + "1" + ")" * 40, "-" * 40 + "1"])
def test_nesting_is_bounded(source: str) -> None:
    with pytest.raises(ValueError, match="nests deeper than 32"):
        Expression(source)
    assert Expression("(" * 30 + "1" + ")" * 30).evaluate({}) == 1.0


def test_literals_must_be_finite() -> None:
    with pytest.raises(ValueError, match="too large"):
        Expression("1e400 * a")
