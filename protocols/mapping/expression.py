"""A tiny arithmetic language for mapping profiles: numbers, field paths, ``+ - * /``, parentheses.

No ``eval``: a recursive-descent parser builds a tree once, when the profile is
loaded (a syntax error is a ``ValueError`` naming the position), and evaluation
walks it over one decoded payload. A field reference is a JSON path
(:mod:`protocols.mapping.json_path`), e.g. ``ENERGY.Current * 1000`` or
``(a.b[0] - 32) * 5 / 9``. Anything that is not a number at run time (a missing
field, a string, division by zero) raises ``ProtocolViolation``.

Grammar::

    expr   := term (("+" | "-") term)*
    term   := factor (("*" | "/") factor)*
    factor := NUMBER | PATH | "(" expr ")" | "-" factor
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Final

from controller.core.errors import ProtocolViolation
from protocols.mapping.json_path import JsonPath

_TOKEN: Final = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
    r"|(?P<path>[A-Za-z_$][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*)"
    r"|(?P<op>[-+*/()]))"
)
MAX_LENGTH: Final = 500
MAX_DEPTH: Final = 32
"""Parentheses and unary minus nest at most this deep (the parser recurses on them)."""


@dataclass(frozen=True, slots=True)
class _Number:
    value: float


@dataclass(frozen=True, slots=True)
class _Field:
    path: JsonPath


@dataclass(frozen=True, slots=True)
class _Negate:
    operand: _Node


@dataclass(frozen=True, slots=True)
class _Binary:
    op: str
    left: _Node
    right: _Node


_Node = _Number | _Field | _Negate | _Binary


class Expression:
    """A parsed expression; :meth:`evaluate` it against a decoded JSON document."""

    def __init__(self, source: str) -> None:
        if not source.strip():
            raise ValueError("empty expression")
        if len(source) > MAX_LENGTH:
            raise ValueError(f"expression longer than {MAX_LENGTH} characters")
        self.source = source
        self._tokens = self._tokenize(source)
        self._at = 0
        self._depth = 0
        self._tree = self._expr()
        if self._at != len(self._tokens):
            _, text, pos = self._tokens[self._at]
            raise ValueError(f"unexpected {text!r} at position {pos} in {source!r}")
        del self._tokens

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other._tree == self._tree

    def __hash__(self) -> int:
        return hash(self._tree)

    @property
    def paths(self) -> tuple[JsonPath, ...]:
        """Every field the expression reads."""
        out: list[JsonPath] = []

        def walk(node: _Node) -> None:
            if isinstance(node, _Field):
                out.append(node.path)
            elif isinstance(node, _Negate):
                walk(node.operand)
            elif isinstance(node, _Binary):
                walk(node.left)
                walk(node.right)

        walk(self._tree)
        return tuple(out)

    def evaluate(self, doc: Any, variables: dict[str, float] | None = None) -> float:
        """The value over ``doc``; a bare name in ``variables`` is read from there first."""
        return self._eval(self._tree, doc, variables or {})

    # ------------------------------------------------------------------ parsing

    @staticmethod
    def _tokenize(source: str) -> list[tuple[str, str, int]]:
        tokens: list[tuple[str, str, int]] = []
        position = 0
        while position < len(source):
            if source[position:].strip() == "":
                break
            match = _TOKEN.match(source, position)
            if match is None or match.end() == position:
                raise ValueError(
                    f"unexpected {source[position:].strip()[:10]!r} "
                    f"at position {position} in {source!r}"
                )
            kind = match.lastgroup
            assert kind is not None  # one group always matches
            tokens.append((kind, match.group(kind), match.start(kind)))
            position = match.end()
        return tokens

    def _peek(self) -> tuple[str, str, int] | None:
        return self._tokens[self._at] if self._at < len(self._tokens) else None

    def _expr(self) -> _Node:
        node = self._term()
        while (token := self._peek()) is not None and token[1] in ("+", "-"):
            self._at += 1
            node = _Binary(token[1], node, self._term())
        return node

    def _term(self) -> _Node:
        node = self._factor()
        while (token := self._peek()) is not None and token[1] in ("*", "/"):
            self._at += 1
            node = _Binary(token[1], node, self._factor())
        return node

    def _factor(self) -> _Node:
        token = self._peek()
        if token is None:
            raise ValueError(f"expression {self.source!r} ends too early")
        kind, text, pos = token
        self._at += 1
        if kind == "number":
            if not math.isfinite(float(text)):
                raise ValueError(f"number {text} at position {pos} is too large")
            return _Number(float(text))
        if kind == "path":
            return _Field(JsonPath(text))
        if text in ("-", "("):
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise ValueError(f"expression {self.source!r} nests deeper than {MAX_DEPTH}")
        if text == "-":
            node: _Node = _Negate(self._factor())
            self._depth -= 1
            return node
        if text == "(":
            node = self._expr()
            self._depth -= 1
            closing = self._peek()
            if closing is None or closing[1] != ")":
                raise ValueError(f"missing ')' for the '(' at position {pos} in {self.source!r}")
            self._at += 1
            return node
        raise ValueError(f"unexpected {text!r} at position {pos} in {self.source!r}")

    # ------------------------------------------------------------------ evaluation

    def _eval(self, node: _Node, doc: Any, variables: dict[str, float]) -> float:
        if isinstance(node, _Number):
            return node.value
        if isinstance(node, _Field):
            if node.path.source in variables:
                return variables[node.path.source]
            value = node.path.get(doc)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ProtocolViolation(f"{node.path.source} must be a number, got {value!r}")
            try:
                return float(value)
            except OverflowError:  # an integer beyond any float: JSON allows it
                raise ProtocolViolation(f"{node.path.source} is out of range") from None
        if isinstance(node, _Negate):
            return -self._eval(node.operand, doc, variables)
        left = self._eval(node.left, doc, variables)
        right = self._eval(node.right, doc, variables)
        if node.op == "+":
            result = left + right
        elif node.op == "-":
            result = left - right
        elif node.op == "*":
            result = left * right
        else:
            if right == 0:
                raise ProtocolViolation(f"division by zero in {self.source!r}")
            result = left / right
        if not math.isfinite(result):
            raise ProtocolViolation(f"{self.source!r} is not finite")
        return result
