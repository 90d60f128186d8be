"""The toolbox: tools bound by name (built-ins or 'module:function'), their arguments checked, run under a timeout.

A tool's keyword arguments, read from its signature, become a JSON schema for the model; `ToolBox.call`
validates what the model sends with pydantic, runs the function (sync ones in a thread) under a
timeout, and returns text of at most `MAX_RESULT_CHARS` characters.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from modelfarm.agents.tools.calc import calculate
from modelfarm.agents.tools.files import read_file
from modelfarm.agents.tools.mail import read_mailbox
from modelfarm.agents.tools.sandbox import ToolContext, truncate
from modelfarm.agents.tools.table import query_table
from modelfarm.errors import ConfigError, ToolError

MAX_RESULT_CHARS = 16_000
"""A tool's text answer is cut to this many characters before the model sees it."""


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


BUILTINS: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {"read_mailbox": read_mailbox, "query_table": query_table, "read_file": read_file, "calculate": calculate}
)
"""The tools any agent may name in farm.toml (read-only)."""


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


def _import_file(file: str, base: Path | None) -> Any:
    """A tool module given as a file next to farm.toml ('tools.py'), imported under a private name."""
    import importlib.util

    if base is None:
        raise ValueError("file tools need the farm's folder")
    path = (base / file).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no file {file} next to farm.toml")
    spec = importlib.util.spec_from_file_location(f"modelfarm_tools_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {file}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(name: str, base: Path | None = None) -> Callable[..., Any]:
    builtins = ", ".join(BUILTINS)
    how = f"use a built-in ({builtins}), a module path such as 'package.module:function', or 'file.py:function'"
    if name in BUILTINS:
        return BUILTINS[name]
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"unknown tool {name!r}: {how}")
    try:
        is_file = module_name.endswith(".py")
        target: Any = _import_file(module_name, base) if is_file else importlib.import_module(module_name)
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

    def __init__(self, workspace: Path, *, modules_dir: Path | None = None) -> None:
        """`modules_dir`: where 'file.py:function' tools are found (the folder of farm.toml)."""
        self.modules_dir = modules_dir
        if not workspace.is_dir():
            state = "is not a folder" if workspace.exists() else "does not exist"
            raise ToolError(f"the agent workspace {str(workspace)!r} {state}; create the folder or name another one")
        self.context = ToolContext(workspace=workspace.resolve())
        self._bound: dict[str, _Bound] = {}

    def resolve(self, names: list[str]) -> dict[str, Tool]:
        """The tools `names` declares (built-in names or 'module:function'); ConfigError if one is unknown."""
        for name in names:
            if name not in self._bound:
                self._bound[name] = _bind(name, _load(name, self.modules_dir))
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
