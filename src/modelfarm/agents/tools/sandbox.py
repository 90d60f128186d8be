"""The workspace sandbox: every file a tool reads is resolved here, and kept inside one folder.

`safe_path` refuses absolute paths, `..` and symbolic links that lead out; its messages name the
workspace as "the workspace", never by its absolute path, so a model learns nothing of the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from modelfarm.errors import ToolError

_MAX_LISTED = 20  # entries named when a path is missing or is a folder


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What the toolbox passes to a tool that has a parameter named `ctx`."""

    workspace: Path
    """The one folder file tools may read: absolute, symbolic links resolved."""


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, with a note saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... truncated {len(text) - limit} chars]"


def safe_path(ctx: ToolContext, relative: str) -> Path:
    """The existing file or folder `relative` names inside the workspace, or ToolError.

    Messages name the workspace as "the workspace", never by its absolute path.
    """
    if not isinstance(relative, str) or not relative.strip() or "\0" in relative:
        raise ToolError(f"{relative!r} is not a path; give a path relative to the workspace, e.g. 'notes.txt'")
    windows = PureWindowsPath(relative)  # splits on both / and \, and knows drives such as C:
    if relative.startswith("~") or windows.drive or windows.root:
        raise ToolError(f"{relative!r} is an absolute path; give a path relative to the workspace, e.g. 'notes.txt'")
    if ".." in windows.parts:
        raise ToolError(f"{relative!r} climbs out with '..'; give a path inside the workspace, e.g. 'notes.txt'")
    workspace = ctx.workspace.resolve()
    try:
        path = (workspace / relative).resolve()
    except (OSError, RuntimeError) as exc:  # a symbolic link loop (RuntimeError before Python 3.13)
        raise ToolError(f"{relative!r} cannot be resolved (a symbolic link loop?); name another file") from exc
    if not path.is_relative_to(workspace):
        raise ToolError(f"{relative!r} leads outside the workspace through a symbolic link; name a file inside it")
    if not path.exists():
        folder = next(p for p in path.parents if p.is_dir() and p.is_relative_to(workspace))
        raise ToolError(f"no file or folder {relative!r} in the workspace; {_listing(folder, workspace)}")
    return path


def regular_file(ctx: ToolContext, relative: str) -> Path:
    """`safe_path`, further refusing folders (naming what they hold) and anything not a regular file."""
    path = safe_path(ctx, relative)
    if path.is_dir():
        raise ToolError(f"{relative!r} is a folder, not a file; {_listing(path, ctx.workspace.resolve())}")
    if not path.is_file():
        raise ToolError(f"{relative!r} is not a regular file; name a text file in the workspace")
    return path


def inside(ctx: ToolContext, path: Path) -> bool:
    """Whether `path`, symbolic links followed, is in the workspace."""
    try:
        return path.resolve().is_relative_to(ctx.workspace.resolve())
    except (OSError, RuntimeError):
        return False


def _listing(folder: Path, workspace: Path) -> str:
    """'the workspace contains: a.csv, mail/' (up to 20 names)."""
    rel = folder.relative_to(workspace).as_posix()
    where = "the workspace" if rel == "." else f"{rel + '/'!r}"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    if not names:
        return f"{where} is empty"
    more = f" ... and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return f"{where} contains: {', '.join(names[:_MAX_LISTED])}{more}"
