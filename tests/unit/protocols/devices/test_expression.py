"""Address formulas: integer arithmetic over named variables, and nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.devices.expression import FormulaError, parse_formula


def test_intesis_formula() -> None:
    formula = parse_formula("7000*ch + 100*sa + 15")
    assert formula.names == {"ch", "sa"}
    assert formula.evaluate({"ch": 1, "sa": 5}) == 7515
    assert formula.evaluate({"ch": 0, "sa": 63}) == 6315


def test_precedence_parentheses_and_integer_division() -> None:
    assert parse_formula("(a + 1) * 4 - a // 2 % 3").evaluate({"a": 7}) == 32 - (3 % 3)
    assert parse_formula("-a + 10").evaluate({"a": 3}) == 7


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",  # a call
        "ch.real",  # an attribute
        "2 ** 16",  # power: unbounded results
        "ch / 2",  # true division: floats
        "1.5 * ch",  # a float
        "ch if sa else 0",
        "ch < sa",
        "[ch]",
        "True + ch",
        "ch +",  # not an expression
        "x" * 201,  # too long
    ],
)
def test_anything_but_integer_arithmetic_is_refused(text: str) -> None:
    with pytest.raises(FormulaError):
        parse_formula(text)


def test_missing_variable_and_division_by_zero_are_formula_errors() -> None:
    with pytest.raises(FormulaError, match="needs sa"):
        parse_formula("ch + sa").evaluate({"ch": 1})
    with pytest.raises(FormulaError, match="divides by zero"):
        parse_formula("100 // ch").evaluate({"ch": 0})


@given(
    a=st.integers(0, 10_000),
    b=st.integers(0, 1_000),
    c=st.integers(0, 1_000),
    ch=st.integers(0, 7),
    sa=st.integers(0, 63),
)
def test_linear_formulas_evaluate_like_arithmetic(a: int, b: int, c: int, ch: int, sa: int) -> None:
    assert parse_formula(f"{a}*ch + {b}*sa + {c}").evaluate({"ch": ch, "sa": sa}) == (
        a * ch + b * sa + c
    )
