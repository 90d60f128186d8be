"""The `read_file` tool: a text file of the workspace, read as UTF-8 and cut to a length."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from modelfarm.agents.tools.sandbox import ToolContext, regular_file
from modelfarm.errors import ToolError


def read_file(ctx: ToolContext, path: str, max_chars: Annotated[int, Field(ge=1)] = 20_000) -> str:
    """Read a text file in the workspace, by its path relative to it (e.g. 'notes/plan.md'),
    up to `max_chars` characters.

    The file is read as UTF-8; undecodable bytes are replaced, not refused.
    """
    file = regular_file(ctx, path)
    try:
        with file.open(encoding="utf-8", errors="replace") as f:
            text = f.read(max_chars)
            rest = len(f.read())  # the cut part is read only to say how long it was
    except OSError as exc:
        raise ToolError(f"cannot read {path!r}: {exc.strerror}") from exc
    return f"{text}\n[... truncated {rest} chars]" if rest else text
