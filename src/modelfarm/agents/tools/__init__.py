"""Agent tools: Python callables offered to a model by name, sandboxed to one workspace folder.

A tool is a built-in (`read_mailbox`, `query_table`, `read_file`, `calculate`) or any function
named by module path (`"package.module:function"`). Its keyword arguments, read from the
signature, become a JSON schema for the model; `ToolBox.call` validates what the model sends
with pydantic, runs the function (sync ones in a thread) under a timeout, and returns text.

The sandbox rule: every file a tool reads goes through `safe_path`, which keeps it inside the
workspace: no absolute paths, no `..`, no symbolic links that lead out. Nothing here uses a
shell or the network.

Modules, one concept each:

- `sandbox`: `ToolContext` (the workspace), `safe_path` and the path checks, `truncate`
- `mail`: `read_mailbox`, with its e-mail and HTML helpers
- `table`: `Filter` and `query_table` over CSV files
- `files`: `read_file`
- `calc`: `calculate` and its safe AST evaluator
- `toolbox`: `Tool`, `ToolBox`, `BUILTINS`: binding, loading and argument validation
"""

from modelfarm.agents.tools.calc import calculate
from modelfarm.agents.tools.files import read_file
from modelfarm.agents.tools.mail import read_mailbox
from modelfarm.agents.tools.sandbox import ToolContext, safe_path, truncate
from modelfarm.agents.tools.table import Filter, query_table
from modelfarm.agents.tools.toolbox import BUILTINS, MAX_RESULT_CHARS, Tool, ToolBox

__all__ = [
    "BUILTINS",
    "MAX_RESULT_CHARS",
    "Filter",
    "Tool",
    "ToolBox",
    "ToolContext",
    "calculate",
    "query_table",
    "read_file",
    "read_mailbox",
    "safe_path",
    "truncate",
]
