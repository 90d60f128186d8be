"""The `query_table` tool: select rows and columns of a workspace CSV file with simple filters."""

from __future__ import annotations

import csv
import io
import math
import operator
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelfarm.agents.tools.sandbox import ToolContext, regular_file
from modelfarm.errors import ToolError

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class Filter(BaseModel):
    """One condition on a column: numbers compare as numbers, anything else as text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    op: Literal["==", "!=", "<", "<=", ">", ">=", "contains"]
    value: str | float


def _number(value: str | float) -> float | None:
    if isinstance(value, float | int):
        return float(value)
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _text(value: str | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _matches(cell: str, where: Filter) -> bool:
    if where.op == "contains":
        return _text(where.value).casefold() in cell.casefold()
    left, right = _number(cell), _number(where.value)
    if left is not None and right is not None:
        return _OPS[where.op](left, right)
    if (left is None) != (right is None) and where.op not in ("==", "!="):
        return False  # a number and a word have no order: "n/a" or "" is not "> 5"
    return _OPS[where.op](cell, _text(where.value))


def query_table(
    ctx: ToolContext,
    file: str,
    columns: list[str] | None = None,
    where: list[Filter] | None = None,
    limit: Annotated[int, Field(ge=1)] = 100,
) -> str:
    """Select rows and columns of a CSV file in the workspace; the answer is CSV text.
    `columns` picks columns (default: all); `where` keeps the rows that pass every filter
    {column, op, value}, op one of == != < <= > >= contains (contains ignores case), numbers
    compared as numbers. The last line, "(N of M rows)", says N rows shown of M that match.

    Other values compare as text, except that a number and a non-number have no order: a cell
    "n/a" or "" fails `> 5` and `< 5` (and passes `!= 5`). `limit` caps the rows shown, not
    the rows counted.
    """
    path = regular_file(ctx, file)
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if not header:
            raise ToolError(f"{file!r} is empty: a CSV file needs a header row of column names")
        index = {name: i for i, name in reversed(list(enumerate(header)))}  # the first of duplicate names
        wanted = columns or header
        unknown = [c for c in [*wanted, *(w.column for w in where or [])] if c not in index]
        if unknown:
            raise ToolError(f"{file!r} has no column {unknown[0]!r}; its columns are: {', '.join(header)}")
        picked = [index[c] for c in wanted]
        tests = [(index[w.column], w) for w in where or []]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(wanted)
        matched = 0
        for row in rows:
            row += [""] * (len(header) - len(row))  # short rows: missing cells are empty
            if all(_matches(row[i], w) for i, w in tests):
                matched += 1
                if matched <= limit:
                    writer.writerow([row[i] for i in picked])
    return f"{out.getvalue()}({min(matched, limit)} of {matched} rows)"
