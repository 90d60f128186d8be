"""The `calculate` tool: arithmetic on numbers by a small AST evaluator, never `eval`.

Only numbers, + - * / // % **, parentheses, abs/round/min/max/sqrt and pi/e are accepted; exponents
and magnitudes are capped so that a model cannot make the server compute for hours.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from modelfarm.errors import ToolError

_MAX_EXPRESSION = 500  # characters
_MAX_EXPONENT = 1000
_MAX_MAGNITUDE = 1e300
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {"abs": abs, "round": round, "min": min, "max": max, "sqrt": math.sqrt}
_NAMES: dict[str, float] = {"pi": math.pi, "e": math.e}
_CONSTRUCTS: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "indexing",
    ast.Lambda: "lambda",
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
    ast.Compare: "comparison",
    ast.BoolOp: "and/or",
    ast.IfExp: "if/else",
    ast.NamedExpr: "assignment (:=)",
    ast.JoinedStr: "f-string",
    ast.List: "list",
    ast.Tuple: "tuple",
    ast.Dict: "dict",
    ast.Set: "set",
}


def _number_value(value: Any) -> int | float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ToolError(f"calculate works on numbers only, not {type(value).__name__}")
    if abs(value) > _MAX_MAGNITUDE:
        raise ToolError("the result is too large (over 1e300); use smaller numbers")
    return value


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str | bytes):
            raise ToolError("strings are not allowed in calculate; give numbers only")
        return _number_value(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ToolError(f"exponent {_format_number(right)} is too large (the limit is {_MAX_EXPONENT})")
        return _number_value(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _number_value(_UNARY[type(node.op)](_evaluate(node.operand)))
    if isinstance(node, ast.Name):
        if node.id in _NAMES:
            return _NAMES[node.id]
        raise ToolError(f"unknown name {node.id!r} in calculate; only pi and e are defined: put numbers in their place")
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in _FUNCTIONS:
            shown = repr(name) if name else "to an expression"
            raise ToolError(f"call {shown} is not allowed in calculate; the functions are {', '.join(_FUNCTIONS)}")
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise ToolError(f"{name}() takes plain positional arguments in calculate")
        return _number_value(_FUNCTIONS[name](*(_evaluate(arg) for arg in node.args)))
    construct = _CONSTRUCTS.get(type(node), type(node).__name__)
    raise ToolError(f"{construct} is not allowed in calculate; use numbers, + - * / // % ** and parentheses")


def _format_number(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".12g") if isinstance(value, float) else str(value)


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression such as '(17.5 - 3) * 12 / 100': numbers,
    + - * / // % ** and parentheses, the functions abs, round, min, max and sqrt, and pi and e.

    Anything else (names, attributes, strings, other calls) is refused, and so are exponents
    over 1000 and results over 1e300, so a model cannot make the server compute for hours.
    """
    if len(expression) > _MAX_EXPRESSION:
        raise ToolError(f"the expression has {len(expression)} characters; the limit is {_MAX_EXPRESSION}")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError) as exc:
        raise ToolError(
            f"{expression!r} is not an arithmetic expression: {exc.msg if isinstance(exc, SyntaxError) else exc}"
        ) from exc
    try:
        return _format_number(_evaluate(tree))
    except ZeroDivisionError as exc:
        raise ToolError(f"{expression!r} divides by zero") from exc
    except OverflowError as exc:
        raise ToolError("the result is too large (over 1e300); use smaller numbers") from exc
    except (ArithmeticError, ValueError, TypeError, RecursionError) as exc:
        raise ToolError(f"{expression!r} cannot be computed: {exc}") from exc
