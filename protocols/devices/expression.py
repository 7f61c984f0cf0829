"""Address formulas: tiny integer expressions over named variables, parsed once, never ``eval``'d.

Some devices place a value at an address computed from where it belongs: the Intesis DALI
gateways put ballast ``sa`` of DALI channel ``ch`` at ``7000*ch + 100*sa + n``. A profile
writes that formula as text; :func:`parse_formula` checks it against a whitelist of syntax
(integer literals, variable names, ``+ - * // %``, unary minus, parentheses) and
:meth:`Formula.evaluate` walks the tree with integer arithmetic. Anything else (calls,
attributes, floats, ``/``, ``**``, comparisons) is refused at parse time, so a profile file
can never run code.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["Formula", "FormulaError", "parse_formula"]

MAX_FORMULA_CHARS = 200

_BINARY: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
}


class FormulaError(ValueError):
    """The formula is not in the allowed syntax, or cannot be evaluated with these values."""


@dataclass(frozen=True, slots=True)
class Formula:
    """A parsed address formula; ``names`` are the variables it reads."""

    text: str
    names: frozenset[str]
    _tree: ast.expr = field(repr=False, compare=False)

    def evaluate(self, values: Mapping[str, int]) -> int:
        """The formula's value with ``values`` bound to its variables (all must be given)."""
        missing = sorted(self.names - values.keys())
        if missing:
            raise FormulaError(f"{self.text!r} needs {', '.join(missing)}")
        return _evaluate(self._tree, values, self.text)

    def __str__(self) -> str:
        return self.text


def parse_formula(text: str) -> Formula:
    """Parse ``text`` (e.g. ``"7000*ch + 100*sa + 15"``) into a :class:`Formula`."""
    if len(text) > MAX_FORMULA_CHARS:
        raise FormulaError(f"longer than {MAX_FORMULA_CHARS} characters")
    try:
        module = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"{text!r} is not an expression: {exc.msg}") from None
    names: set[str] = set()
    _check(module.body, names, text)
    return Formula(text=text.strip(), names=frozenset(names), _tree=module.body)


def _check(node: ast.expr, names: set[str], text: str) -> None:
    match node:
        case ast.Constant(value=int() as value) if not isinstance(value, bool):
            return
        case ast.Name(id=name):
            names.add(name)
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            _check(left, names, text)
            _check(right, names, text)
        case ast.UnaryOp(op=ast.USub() | ast.UAdd(), operand=operand):
            _check(operand, names, text)
        case _:
            raise FormulaError(
                f"{text!r}: only integers, variable names, + - * // % and parentheses "
                f"are allowed (found {ast.unparse(node)!r})"
            )


def _evaluate(node: ast.expr, values: Mapping[str, int], text: str) -> int:
    match node:
        case ast.Constant(value=int() as value):
            return value
        case ast.Name(id=name):
            return values[name]
        case ast.BinOp(left=left, op=op, right=right):
            a = _evaluate(left, values, text)
            b = _evaluate(right, values, text)
            try:
                return _BINARY[type(op)](a, b)
            except ZeroDivisionError:
                raise FormulaError(f"{text!r} divides by zero") from None
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_evaluate(operand, values, text)
        case ast.UnaryOp(operand=operand):
            return _evaluate(operand, values, text)
    raise FormulaError(f"{text!r}: unexpected node")  # unreachable after _check
