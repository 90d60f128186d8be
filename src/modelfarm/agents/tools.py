"""Agent tools: Python callables offered to a model by name, sandboxed to one workspace folder.

A tool is a built-in (`read_mailbox`, `query_table`, `read_file`, `calculate`) or any function
named by module path (`"package.module:function"`). Its keyword arguments, read from the
signature, become a JSON schema for the model; `ToolBox.call` validates what the model sends
with pydantic, runs the function (sync ones in a thread) under a timeout, and returns text.

Every file a tool reads goes through `safe_path`, which keeps it inside the workspace:
no absolute paths, no `..`, no symbolic links that lead out. Nothing here uses a shell or
the network.
"""

from __future__ import annotations

import ast
import asyncio
import csv
import email
import email.policy
import importlib
import inspect
import io
import json
import mailbox
import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path, PureWindowsPath
from types import MappingProxyType
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from modelfarm.errors import ConfigError, ToolError

MAX_RESULT_CHARS = 16_000
"""A tool's text answer is cut to this many characters before the model sees it."""
_MAX_LISTED = 20  # entries named when a path is missing or is a folder
_MAX_BODY_CHARS = 2_000  # per mail


@dataclass(frozen=True, slots=True)
class Tool:
    """A callable offered to a model."""

    name: str
    """The built-in's name, or the module path exactly as the manifest gives it."""
    description: str
    """The first paragraph of the function's docstring: what the model is told the tool does."""
    parameters: dict[str, Any]
    """JSON schema (type object) of the keyword arguments the model gives; `ctx` is not among them."""
    func: Callable[..., Any]


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


# -- the sandbox --------------------------------------------------------------------------------


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


def _inside(ctx: ToolContext, path: Path) -> bool:
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


def _regular_file(ctx: ToolContext, relative: str) -> Path:
    path = safe_path(ctx, relative)
    if path.is_dir():
        raise ToolError(f"{relative!r} is a folder, not a file; {_listing(path, ctx.workspace.resolve())}")
    if not path.is_file():
        raise ToolError(f"{relative!r} is not a regular file; name a text file in the workspace")
    return path


# -- read_mailbox -------------------------------------------------------------------------------

_URL = re.compile(r"https?://[^\s<>\"'()\[\]{}]+", re.IGNORECASE)


class _HTMLText(HTMLParser):
    """The visible text of an HTML body, and the targets of its links."""

    _BLOCKS = frozenset({"br", "p", "div", "li", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hrefs: list[str] = []
        self._hidden = 0  # depth inside <script> / <style>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        elif tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href.strip())
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden = max(0, self._hidden - 1)
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        return "\n".join(line for line in lines if line)


def _content(part: EmailMessage) -> str:
    try:
        text = part.get_content()
    except (LookupError, UnicodeError):  # an unknown or lying charset
        payload = part.get_payload(decode=True)
        text = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    return text if isinstance(text, str) else ""


def _mail_block(mail_id: str, msg: EmailMessage) -> str:
    plain, html = msg.get_body(preferencelist=("plain",)), msg.get_body(preferencelist=("html",))
    found: list[str] = []
    body = ""
    if isinstance(plain, EmailMessage):
        body = _content(plain)
        found += _URL.findall(body)
    if isinstance(html, EmailMessage):
        parser = _HTMLText()
        parser.feed(_content(html))
        parser.close()
        found += [h for h in parser.hrefs if h.lower().startswith(("http://", "https://"))]
        if not isinstance(plain, EmailMessage):
            body = parser.text()
            found += _URL.findall(body)
    links = list(dict.fromkeys(url.rstrip(".,;:!?") for url in found))
    attachments = [
        part.get_filename() or f"(unnamed {part.get_content_type()})"
        for part in msg.walk()
        if not part.is_multipart() and (part.get_content_disposition() == "attachment" or part.get_filename())
    ]
    lines = [f"id: {mail_id}"]
    lines += [f"{field}: {_header(msg, field)}" for field in ("from", "to", "date", "subject")]
    lines.append("links:" + ("" if links else " (none)"))
    lines += [f"  - {url} (host: {urlsplit(url).hostname or '?'})" for url in links]
    lines.append(f"attachments: {', '.join(attachments) if attachments else '(none)'}")
    lines.append("body:")
    lines += [f"  {line.rstrip()}" for line in truncate(body.strip(), _MAX_BODY_CHARS).splitlines() if line.strip()]
    return "\n".join(lines)


def _header(msg: EmailMessage, name: str) -> str:
    value = msg[name]
    return " ".join(str(value).split()) if value is not None else ""


def _sent(msg: EmailMessage) -> datetime | None:
    try:
        when = parsedate_to_datetime(str(msg["date"]))
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)  # what policy.default builds
    return msg


def _is_mbox(path: Path) -> bool:
    return path.name == "mbox" or path.suffix.lower() == ".mbox"


def _messages(ctx: ToolContext, path: Path) -> Iterator[tuple[str, EmailMessage]]:
    """(id, message) for an .eml file, each message of an mbox file, or both kinds in a folder."""
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    for file in files:
        if not file.is_file() or not _inside(ctx, file):
            continue
        if _is_mbox(file):
            box = mailbox.mbox(file, create=False)
            try:
                for n, key in enumerate(box.keys(), start=1):
                    yield f"{file.name}#{n}", _parse(box.get_bytes(key))
            finally:
                box.close()
        elif file.suffix.lower() == ".eml":
            yield file.name, _parse(file.read_bytes())


def read_mailbox(ctx: ToolContext, folder: str = ".", limit: Annotated[int, Field(ge=1)] = 50) -> str:
    """Read the e-mails of a workspace folder of .eml files, or of an mbox file, oldest first.
    For each mail: its id, from, to, date, subject, the links in its body with their host,
    the names of its attachments (never opened) and its plain-text body (cut to 2,000 chars).

    The first paragraph is what the model reads. HTML-only mails are reduced to their text,
    and their link targets are listed; a folder's mbox files are read along with its .eml files.
    """
    path = safe_path(ctx, folder)
    if path.is_file() and not (_is_mbox(path) or path.suffix.lower() == ".eml"):
        raise ToolError(f"{folder!r} is neither a folder of .eml files nor an mbox file; name one of those")
    mails = sorted(_messages(ctx, path), key=lambda m: (_sent(m[1]) is None, _sent(m[1]) or datetime.min, m[0]))
    if not mails:
        return f"no mail in {folder!r}: it holds no .eml or mbox files"
    blocks = [_mail_block(mail_id, msg) for mail_id, msg in mails[:limit]]
    if len(mails) > limit:
        blocks.append(f"({limit} of {len(mails)} mails shown; raise `limit` for more)")
    return "\n\n".join(blocks)


# -- query_table --------------------------------------------------------------------------------

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
    path = _regular_file(ctx, file)
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


# -- read_file ----------------------------------------------------------------------------------


def read_file(ctx: ToolContext, path: str, max_chars: Annotated[int, Field(ge=1)] = 20_000) -> str:
    """Read a text file in the workspace, by its path relative to it (e.g. 'notes/plan.md'),
    up to `max_chars` characters.

    The file is read as UTF-8; undecodable bytes are replaced, not refused.
    """
    file = _regular_file(ctx, path)
    try:
        with file.open(encoding="utf-8", errors="replace") as f:
            text = f.read(max_chars)
            rest = len(f.read())  # the cut part is read only to say how long it was
    except OSError as exc:
        raise ToolError(f"cannot read {path!r}: {exc.strerror}") from exc
    return f"{text}\n[... truncated {rest} chars]" if rest else text


# -- calculate ----------------------------------------------------------------------------------

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


BUILTINS: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {"read_mailbox": read_mailbox, "query_table": query_table, "read_file": read_file, "calculate": calculate}
)
"""The tools any agent may name in farm.toml (read-only)."""


# -- the toolbox --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bound:
    """A resolved tool with what `call` needs: the arguments' model and whether it takes ctx."""

    tool: Tool
    arguments: type[BaseModel]
    fields: dict[str, str]  # model field -> keyword argument (fields are aliased: any name is safe)
    takes_ctx: bool


def _bind(name: str, func: Callable[..., Any]) -> _Bound:
    try:
        signature = inspect.signature(func, eval_str=True)
    except (NameError, TypeError, ValueError) as exc:
        raise ConfigError(f"tool {name!r}: cannot read its signature ({exc}); give it type hints that import") from exc
    definitions: dict[str, Any] = {}
    fields: dict[str, str] = {}
    for i, param in enumerate(signature.parameters.values()):
        if param.name == "ctx":
            continue
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise ConfigError(f"tool {name!r}: parameter {param.name!r} is {param.kind.description}; use named ones")
        annotation = Any if param.annotation is param.empty else param.annotation
        default = ... if param.default is param.empty else param.default
        definitions[f"p{i}"] = (annotation, Field(default, alias=param.name))
        fields[f"p{i}"] = param.name
    try:
        arguments: type[BaseModel] = create_model("Arguments", __config__=ConfigDict(extra="forbid"), **definitions)
        schema = arguments.model_json_schema()
    except Exception as exc:  # pydantic refuses the type hints: translate at the boundary
        reason = str(exc).splitlines()[0]  # pydantic adds a paragraph and a link
        raise ConfigError(f"tool {name!r}: its parameters have no JSON schema ({reason}); use JSON-like types") from exc
    schema.pop("title", None)
    doc = inspect.getdoc(func) or ""
    description = " ".join(doc.split("\n\n", 1)[0].split())
    tool = Tool(name=name, description=description, parameters=schema, func=func)
    return _Bound(tool, arguments, fields, "ctx" in signature.parameters)


def _load(name: str) -> Callable[..., Any]:
    builtins = ", ".join(BUILTINS)
    how = f"use a built-in ({builtins}) or a module path such as 'package.module:function'"
    if name in BUILTINS:
        return BUILTINS[name]
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"unknown tool {name!r}: {how}")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # importing runs the module: any error there is the operator's to fix
        problem = f"{type(exc).__name__}: {exc}"
        raise ConfigError(
            f"tool {name!r}: cannot import {module_name!r} ({problem}); fix or install it, or {how}"
        ) from exc
    try:
        for part in attribute.split("."):
            target = getattr(target, part)
    except AttributeError as exc:
        raise ConfigError(f"tool {name!r}: {module_name!r} has no {attribute!r}; {how}") from exc
    if not callable(target):
        raise ConfigError(f"tool {name!r} is a {type(target).__name__}, not a function; {how}")
    return target  # type: ignore[no-any-return]


def _argument_error(tool: Tool, exc: ValidationError) -> ToolError:
    first = exc.errors()[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
    required = set(tool.parameters.get("required", []))
    takes = ", ".join(f"{p}{' (required)' if p in required else ''}" for p in tool.parameters.get("properties", {}))
    if first["type"] == "missing" and len(first["loc"]) == 1:
        problem = f"missing required argument {where!r}"
    elif first["type"] == "extra_forbidden" and len(first["loc"]) == 1:
        problem = f"unknown argument {where!r}"
    else:
        problem = f"argument {where!r}: {first['msg']} (got {str(first.get('input'))[:60]!r})"
    return ToolError(f"tool {tool.name!r}: {problem}; it takes: {takes or 'no arguments'}", param=where)


class ToolBox:
    """The tools of a farm's agents, all sandboxed to one workspace folder.

    `call` runs only tools that `resolve` returned on this box: the names an agent declares
    are its allow-list, so a model cannot reach an arbitrary importable function.
    """

    def __init__(self, workspace: Path) -> None:
        if not workspace.is_dir():
            state = "is not a folder" if workspace.exists() else "does not exist"
            raise ToolError(f"the agent workspace {str(workspace)!r} {state}; create the folder or name another one")
        self.context = ToolContext(workspace=workspace.resolve())
        self._bound: dict[str, _Bound] = {}

    def resolve(self, names: list[str]) -> dict[str, Tool]:
        """The tools `names` declares (built-in names or 'module:function'); ConfigError if one is unknown."""
        for name in names:
            if name not in self._bound:
                self._bound[name] = _bind(name, _load(name))
        return {name: self._bound[name].tool for name in names}

    async def call(self, name: str, args: dict[str, Any], *, timeout_s: float = 30.0) -> str:
        """Run tool `name` with the model's `args`; its answer as text of at most 16,000 characters.

        Sync tools run in a thread: on timeout the caller gets ToolError at once, but the thread
        runs on to its end (Python cannot stop it). An async tool that blocks the loop cannot be
        timed out at all.
        """
        bound = self._bound.get(name)
        if bound is None:
            known = ", ".join(self._bound) or "none"
            raise ToolError(f"unknown tool {name!r}; the tools declared in farm.toml are: {known}")
        if not isinstance(args, dict):
            raise ToolError(f"tool {name!r}: arguments must be a JSON object, not {type(args).__name__}")
        try:
            validated = bound.arguments.model_validate(args)
        except ValidationError as exc:
            raise _argument_error(bound.tool, exc) from exc
        kwargs = {param: getattr(validated, field) for field, param in bound.fields.items()}
        if bound.takes_ctx:
            kwargs["ctx"] = self.context
        try:
            async with asyncio.timeout(timeout_s):
                result = await self._run(bound.tool, kwargs)
        except TimeoutError as exc:  # the tool's own errors became ToolError in _run: this is ours
            raise ToolError(f"tool {name!r} did not finish within {timeout_s:g} s; ask it for less") from exc
        text = result if isinstance(result, str) else json.dumps(result, default=str, ensure_ascii=False)
        return truncate(text, MAX_RESULT_CHARS)

    async def _run(self, tool: Tool, kwargs: dict[str, Any]) -> Any:
        try:
            if inspect.iscoroutinefunction(tool.func):
                return await tool.func(**kwargs)
            result = await asyncio.to_thread(tool.func, **kwargs)
            return await result if inspect.isawaitable(result) else result
        except ToolError:
            raise
        except Exception as exc:  # a tool's own failure is the model's to hear about, not a server error
            message = str(exc).replace(str(self.context.workspace), "<workspace>")
            raise ToolError(f"tool {tool.name!r} failed: {type(exc).__name__}: {message}") from exc
