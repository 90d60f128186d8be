"""Agent tools on real files made in tmp_path: the workspace sandbox, the four built-ins, the toolbox."""

from __future__ import annotations

import asyncio
import mailbox
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from modelfarm.agents.tools import BUILTINS, ToolBox, ToolContext, calculate, read_file, safe_path
from modelfarm.errors import ConfigError, ToolError


def call(box: ToolBox, name: str, args: dict[str, Any], timeout_s: float = 5.0) -> str:
    return asyncio.run(box.call(name, args, timeout_s=timeout_s))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "plan.md").write_text("step one\nstep two\n", encoding="utf-8")
    (root / "hello.txt").write_text("héllo wörld", encoding="utf-8")
    return root


@pytest.fixture
def box(workspace: Path) -> ToolBox:
    box = ToolBox(workspace)
    box.resolve(list(BUILTINS))
    return box


# -- the sandbox --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["../x", "sub/../../x", "notes/../hello.txt", "/etc/passwd", "~/x", "C:\\x", "", "a\0b"]
)
def test_paths_that_leave_or_are_not_relative_are_refused(workspace: Path, bad: str) -> None:
    ctx = ToolContext(workspace=workspace.resolve())
    with pytest.raises(ToolError) as caught:
        safe_path(ctx, bad)
    assert str(workspace) not in caught.value.message
    assert str(workspace.resolve()) not in caught.value.message


def test_a_symlink_out_of_the_workspace_is_refused(workspace: Path, tmp_path: Path, box: ToolBox) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the password", encoding="utf-8")
    (workspace / "link.txt").symlink_to(secret)
    (workspace / "outside").symlink_to(tmp_path)
    for path in ("link.txt", "outside/secret.txt"):
        with pytest.raises(ToolError, match="outside the workspace") as caught:
            call(box, "read_file", {"path": path})
        assert str(tmp_path) not in caught.value.message


def test_a_symlink_within_the_workspace_is_followed(workspace: Path, box: ToolBox) -> None:
    (workspace / "alias.md").symlink_to(workspace / "notes" / "plan.md")
    assert call(box, "read_file", {"path": "alias.md"}).startswith("step one")


# -- read_file ----------------------------------------------------------------------------------


def test_read_file_reads_text_and_cuts_it(box: ToolBox, workspace: Path) -> None:
    assert call(box, "read_file", {"path": "hello.txt"}) == "héllo wörld"
    assert call(box, "read_file", {"path": "notes/plan.md", "max_chars": 8}) == "step one\n[... truncated 10 chars]"
    (workspace / "bad.txt").write_bytes(b"ok \xff\xfe end")
    assert call(box, "read_file", {"path": "bad.txt"}) == "ok \ufffd\ufffd end"


def test_read_file_on_a_folder_lists_it(box: ToolBox, workspace: Path) -> None:
    with pytest.raises(ToolError, match=r"'notes' is a folder.*'notes/' contains: plan\.md") as caught:
        call(box, "read_file", {"path": "notes"})
    assert str(workspace) not in caught.value.message


def test_a_missing_file_lists_what_is_there(box: ToolBox, workspace: Path) -> None:
    with pytest.raises(ToolError, match=r"no file or folder 'nope\.txt'.*the workspace contains: hello\.txt, notes/"):
        call(box, "read_file", {"path": "nope.txt"})
    with pytest.raises(ToolError, match=r"'notes/' contains: plan\.md"):
        call(box, "read_file", {"path": "notes/old.md"})
    for i in range(30):
        (workspace / f"f{i:02}.txt").touch()
    with pytest.raises(ToolError, match=r"f18\.txt, f19\.txt \.\.\. and 12 more") as caught:
        read_file(box.context, "missing.txt")
    assert str(workspace) not in caught.value.message


# -- read_mailbox -------------------------------------------------------------------------------


def mail(sender: str, subject: str, date: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "me@example.org"
    msg["Subject"] = subject
    msg["Date"] = date
    return msg


@pytest.fixture
def inbox(workspace: Path) -> Path:
    folder = workspace / "inbox"
    folder.mkdir()
    plain = mail("Alice <alice@example.org>", "Lunch", "Tue, 02 Jan 2024 12:00:00 +0000")
    plain.set_content("Lunch at noon?\nMenu: https://food.example.com/menu.\n")
    html = mail("Bank <security@bank-alerts.test>", "Verify your account", "Mon, 01 Jan 2024 09:00:00 +0000")
    html.set_content(
        "<html><style>p {color: red}</style><body><p>Dear customer,</p>"
        '<p>please <a href="http://evil.example.net/login?id=7">verify</a> now.</p></body></html>',
        subtype="html",
    )
    report = mail("Carol <carol@example.org>", "Q1 report", "Wed, 03 Jan 2024 08:30:00 +0100")
    report.set_content("The report is attached.")
    report.add_attachment(b"%PDF-1.4 not really", maintype="application", subtype="pdf", filename="q1.pdf")
    for name, msg in (("b_plain.eml", plain), ("a_html.eml", html), ("c_report.eml", report)):
        (folder / name).write_bytes(msg.as_bytes())
    (folder / "notes.txt").write_text("not a mail", encoding="utf-8")
    return folder


def blocks(text: str) -> list[dict[str, str]]:
    """The mail blocks as {field: value}; the body and links keep their indented lines."""
    parsed = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith("  "):
                fields[key] += line.strip() + "\n"
            else:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        parsed.append(fields)
    return parsed


def test_read_mailbox_reads_eml_files_oldest_first(box: ToolBox, inbox: Path) -> None:
    mails = blocks(call(box, "read_mailbox", {"folder": "inbox"}))
    assert [m["id"] for m in mails] == ["a_html.eml", "b_plain.eml", "c_report.eml"]
    phish, lunch, report = mails
    assert phish["from"] == "Bank <security@bank-alerts.test>"
    assert phish["subject"] == "Verify your account"
    assert phish["links"] == "- http://evil.example.net/login?id=7 (host: evil.example.net)\n"
    assert phish["body"] == "Dear customer,\nplease verify now.\n"
    assert phish["attachments"] == "(none)"
    assert lunch["to"] == "me@example.org"
    assert lunch["links"] == "- https://food.example.com/menu (host: food.example.com)\n"
    assert lunch["body"].startswith("Lunch at noon?")
    assert report["attachments"] == "q1.pdf"
    assert "PDF-1.4" not in report["body"]


def test_read_mailbox_skips_mails_linked_from_outside(box: ToolBox, inbox: Path, tmp_path: Path) -> None:
    secret = mail("Boss <boss@example.org>", "Salaries", "Thu, 04 Jan 2024 08:00:00 +0000")
    secret.set_content("confidential")
    (tmp_path / "secret.eml").write_bytes(secret.as_bytes())
    (inbox / "z_link.eml").symlink_to(tmp_path / "secret.eml")
    text = call(box, "read_mailbox", {"folder": "inbox"})
    assert [m["id"] for m in blocks(text)] == ["a_html.eml", "b_plain.eml", "c_report.eml"]
    assert "confidential" not in text


def test_read_mailbox_cuts_long_bodies_and_counts_what_it_left_out(box: ToolBox, inbox: Path) -> None:
    long = mail("Dan <dan@example.org>", "Essay", "Thu, 04 Jan 2024 08:00:00 +0000")
    long.set_content("word " * 1000)
    (inbox / "d_long.eml").write_bytes(long.as_bytes())
    text = call(box, "read_mailbox", {"folder": "inbox", "limit": 4})
    assert "[... truncated 2999 chars]" in text  # 5,000 characters, stripped of the last space
    text = call(box, "read_mailbox", {"folder": "inbox", "limit": 2})
    assert [m["id"] for m in blocks(text)[:2]] == ["a_html.eml", "b_plain.eml"]
    assert text.endswith("(2 of 4 mails shown; raise `limit` for more)")


def test_read_mailbox_reads_an_mbox_file(box: ToolBox, workspace: Path) -> None:
    box_file = mailbox.mbox(workspace / "archive.mbox")
    later = mail("Erin <erin@example.org>", "Second", "Fri, 05 Jan 2024 10:00:00 +0000")
    later.set_content("See https://docs.example.com/a and https://docs.example.com/a again.")
    earlier = mail("Frank <frank@example.org>", "First", "Thu, 04 Jan 2024 10:00:00 +0000")
    earlier.set_content("Hello.")
    box_file.add(later)
    box_file.add(earlier)
    box_file.close()
    mails = blocks(call(box, "read_mailbox", {"folder": "archive.mbox"}))
    assert [(m["id"], m["subject"]) for m in mails] == [("archive.mbox#2", "First"), ("archive.mbox#1", "Second")]
    assert mails[1]["links"] == "- https://docs.example.com/a (host: docs.example.com)\n"


def test_read_mailbox_refuses_other_files(box: ToolBox) -> None:
    with pytest.raises(ToolError, match=r"neither a folder of \.eml files nor an mbox file"):
        call(box, "read_mailbox", {"folder": "hello.txt"})
    assert call(box, "read_mailbox", {"folder": "notes"}) == "no mail in 'notes': it holds no .eml or mbox files"


# -- query_table --------------------------------------------------------------------------------


@pytest.fixture
def table(workspace: Path) -> str:
    (workspace / "sales.csv").write_text(
        "region,product,units,price\n"
        "North,Widget,10,2.5\n"
        "South,Gadget,9,10\n"
        "North,Gizmo,100,1.25\n"
        "East,widget deluxe,n/a,7\n",
        encoding="utf-8",
    )
    return "sales.csv"


def test_query_table_selects_columns(box: ToolBox, table: str) -> None:
    assert call(box, "query_table", {"file": table, "columns": ["product", "region"]}) == (
        "product,region\nWidget,North\nGadget,South\nGizmo,North\nwidget deluxe,East\n(4 of 4 rows)"
    )


@pytest.mark.parametrize(
    ("op", "value", "products"),
    [
        ("==", "North", ["Widget", "Gizmo"]),
        ("!=", "North", ["Gadget", "widget deluxe"]),
        ("contains", "WIDGET", ["Widget", "widget deluxe"]),
    ],
)
def test_query_table_text_filters(box: ToolBox, table: str, op: str, value: str, products: list[str]) -> None:
    column = "product" if op == "contains" else "region"
    text = call(
        box,
        "query_table",
        {"file": table, "columns": ["product"], "where": [{"column": column, "op": op, "value": value}]},
    )
    assert text.splitlines()[1:-1] == products


@pytest.mark.parametrize(
    ("column", "op", "value", "cells"),
    [
        ("units", "<", 10, ["9"]),  # as numbers 9 < 10 < 100; as text "100" < "9"
        ("units", "<=", "10", ["10", "9"]),
        ("units", ">", 9.5, ["10", "100"]),  # "n/a" is not a number: it is neither above nor below one
        ("units", ">=", 100, ["100"]),
        ("units", "==", 10.0, ["10"]),
        ("units", "!=", 10, ["9", "100", "n/a"]),
        ("price", "<", "5", ["2.5", "1.25"]),
        ("region", "<", "O", ["North", "North", "East"]),  # text against text: in text order
        ("region", ">=", "South", ["South"]),
    ],
)
def test_query_table_compares_numbers_as_numbers(
    box: ToolBox, table: str, column: str, op: str, value: object, cells: list[str]
) -> None:
    where = [{"column": column, "op": op, "value": value}]
    text = call(box, "query_table", {"file": table, "columns": [column], "where": where})
    assert text.splitlines()[1:-1] == cells


def test_query_table_combines_filters_and_limits_rows(box: ToolBox, table: str) -> None:
    where = [{"column": "region", "op": "==", "value": "North"}, {"column": "price", "op": "<", "value": 2}]
    assert call(box, "query_table", {"file": table, "where": where}) == (
        "region,product,units,price\nNorth,Gizmo,100,1.25\n(1 of 1 rows)"
    )
    assert call(box, "query_table", {"file": table, "columns": ["units"], "limit": 2}) == "units\n10\n9\n(2 of 4 rows)"


def test_query_table_unknown_column_lists_the_columns(box: ToolBox, table: str) -> None:
    with pytest.raises(ToolError, match="no column 'colour'; its columns are: region, product, units, price"):
        call(box, "query_table", {"file": table, "columns": ["colour"]})
    with pytest.raises(ToolError, match="no column 'cost'"):
        call(box, "query_table", {"file": table, "where": [{"column": "cost", "op": ">", "value": 1}]})


def test_query_table_refuses_a_bad_filter(box: ToolBox, table: str) -> None:
    with pytest.raises(ToolError, match=r"argument 'where\[0\]\.op'"):
        call(box, "query_table", {"file": table, "where": [{"column": "units", "op": "~", "value": 1}]})


# -- calculate ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("2+3*4", "14"),
        ("sqrt(16)", "4"),
        ("10/4", "2.5"),
        ("-(2 ** 10) // 3 % 7", "1"),  # floor division and modulo round down: -342 % 7
        ("round(pi, 3) + max(1, 2) - abs(-1) + min(e, 3) * 0", "4.142"),
        ("1/3", "0.333333333333"),
        ("0.1 + 0.2", "0.3"),
    ],
)
def test_calculate(expression: str, result: str) -> None:
    assert calculate(expression) == result


@pytest.mark.parametrize(
    ("expression", "complaint"),
    [
        ("__import__('os')", "call '__import__' is not allowed"),
        ("().__class__", "attribute access is not allowed"),
        ("a+1", "unknown name 'a'"),
        ("'x'*3", "strings are not allowed"),
        ("9**9**9", "exponent 387420489 is too large"),
        ("10.0**300 * 10**10", "too large"),
        ("open('f')", "call 'open' is not allowed"),
        ("[x for x in (1, 2)]", "list comprehension is not allowed"),
        ("(lambda: 1)()", "call to an expression is not allowed"),
        ("1/0", "divides by zero"),
        ("1 +", "not an arithmetic expression"),
        ("1+" * 300 + "1", "the limit is 500"),
    ],
)
def test_calculate_refuses(expression: str, complaint: str) -> None:
    with pytest.raises(ToolError, match="(?i)" + complaint.replace("(", r"\(").replace("*", r"\*")):
        calculate(expression)


# -- the toolbox --------------------------------------------------------------------------------

CUSTOM = '''
import asyncio
from pathlib import Path

from modelfarm.agents.tools import ToolContext


def count_words(ctx: ToolContext, file: str, at_least: int = 1) -> dict[str, int]:
    """Count the words of a file.

    Not shown to the model.
    """
    words = (ctx.workspace / file).read_text().split()
    return {"words": len(words), "ok": int(len(words) >= at_least)}


async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return "done"


def broken() -> str:
    raise ValueError("the spline is reticulated")


def chatty() -> str:
    return "x" * 20_000


def untyped(when: asyncio.Event) -> None:
    """An argument no model can give."""


NOT_A_FUNCTION = 3
'''


@pytest.fixture
def custom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "mytools_for_test.py").write_text(CUSTOM, encoding="utf-8")
    (tmp_path / "broken_tools_for_test.py").write_text("1 / 0\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "mytools_for_test"


def test_resolve_built_ins_with_their_schema(workspace: Path) -> None:
    tools = ToolBox(workspace).resolve(["calculate", "query_table"])
    assert list(tools) == ["calculate", "query_table"]
    table = tools["query_table"].parameters
    assert table["type"] == "object"
    assert list(table["properties"]) == ["file", "columns", "where", "limit"]
    assert table["required"] == ["file"]
    assert table["properties"]["limit"]["type"] == "integer"
    assert "ctx" not in table["properties"]
    assert tools["calculate"].description.startswith("Evaluate an arithmetic expression")


def test_resolve_a_tool_by_module_path(workspace: Path, custom: str) -> None:
    name = f"{custom}:count_words"
    box = ToolBox(workspace)
    tool = box.resolve([name])[name]
    assert tool.name == name
    assert tool.description == "Count the words of a file."
    assert tool.parameters["properties"]["file"]["type"] == "string"
    assert tool.parameters["properties"]["at_least"] == {"default": 1, "title": "At Least", "type": "integer"}
    assert "ctx" not in tool.parameters["properties"]
    # ctx is passed in: the tool reads the workspace file it is given
    assert call(box, name, {"file": "notes/plan.md"}) == '{"words": 4, "ok": 1}'


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("send_email", "unknown tool 'send_email'"),
        ("no_such_module_xyz:f", "cannot import 'no_such_module_xyz'"),
        ("mytools_for_test:missing", "has no 'missing'"),
        ("mytools_for_test:NOT_A_FUNCTION", "is a int, not a function"),
        ("broken_tools_for_test:f", "cannot import 'broken_tools_for_test' \\(ZeroDivisionError"),
    ],
)
def test_resolve_refuses_unknown_tools(workspace: Path, custom: str, name: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint) as caught:
        ToolBox(workspace).resolve([name])
    assert "read_mailbox, query_table, read_file, calculate" in caught.value.message


def test_resolve_refuses_arguments_a_model_cannot_give(workspace: Path, custom: str) -> None:
    with pytest.raises(ConfigError, match=r"'mytools_for_test:untyped': its parameters have no JSON schema \(.*Event"):
        ToolBox(workspace).resolve(["mytools_for_test:untyped"])


def test_a_workspace_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="does not exist; create the folder"):
        ToolBox(tmp_path / "nowhere")
    (tmp_path / "file").touch()
    with pytest.raises(ToolError, match="is not a folder"):
        ToolBox(tmp_path / "file")


def test_call_validates_arguments(box: ToolBox) -> None:
    with pytest.raises(ToolError, match="argument 'max_chars': Input should be a valid integer") as caught:
        call(box, "read_file", {"path": "hello.txt", "max_chars": "lots"})
    assert caught.value.param == "max_chars"
    with pytest.raises(ToolError, match="missing required argument 'path'; it takes: path \\(required\\), max_chars"):
        call(box, "read_file", {})
    with pytest.raises(ToolError, match="unknown argument 'encoding'"):
        call(box, "read_file", {"path": "hello.txt", "encoding": "latin-1"})
    with pytest.raises(ToolError, match="unknown argument 'ctx'"):  # the model cannot pick the workspace
        call(box, "read_file", {"path": "hello.txt", "ctx": {"workspace": "/"}})
    with pytest.raises(ToolError, match="argument 'limit': Input should be greater than or equal to 1"):
        call(box, "read_mailbox", {"limit": 0})


def test_call_runs_only_resolved_tools(workspace: Path) -> None:
    box = ToolBox(workspace)
    box.resolve(["calculate"])
    assert call(box, "calculate", {"expression": "6*7"}) == "42"
    with pytest.raises(ToolError, match=r"unknown tool 'read_file'; the tools declared in farm\.toml are: calculate"):
        call(box, "read_file", {"path": "hello.txt"})
    with pytest.raises(ToolError, match="unknown tool 'os:system'"):
        call(box, "os:system", {"command": "true"})


def test_call_times_out(workspace: Path, custom: str) -> None:
    box = ToolBox(workspace)
    box.resolve([f"{custom}:slow"])
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"did not finish within 0\.2 s"):
        call(box, f"{custom}:slow", {"seconds": 5}, timeout_s=0.2)
    assert time.monotonic() - started < 1.5
    assert call(box, f"{custom}:slow", {"seconds": 0}) == "done"


def test_a_failing_tool_becomes_a_tool_error(workspace: Path, custom: str) -> None:
    box = ToolBox(workspace)
    box.resolve([f"{custom}:broken", f"{custom}:count_words"])
    with pytest.raises(ToolError, match="failed: ValueError: the spline is reticulated"):
        call(box, f"{custom}:broken", {})
    with pytest.raises(ToolError, match="failed: FileNotFoundError") as caught:
        call(box, f"{custom}:count_words", {"file": "gone.txt"})
    assert str(workspace) not in caught.value.message


def test_long_answers_are_cut(workspace: Path, custom: str) -> None:
    box = ToolBox(workspace)
    box.resolve([f"{custom}:chatty"])
    text = call(box, f"{custom}:chatty", {})
    assert text == "x" * 16_000 + "\n[... truncated 4000 chars]"


def test_a_tool_can_be_a_file_next_to_the_farm(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "farm_tools.py").write_text("def shout(text: str) -> str:\n    return text.upper()\n")
    box = ToolBox(tmp_path / "ws", modules_dir=tmp_path)
    assert set(box.resolve(["farm_tools.py:shout"])) == {"farm_tools.py:shout"}
    assert asyncio.run(box.call("farm_tools.py:shout", {"text": "hi"})) == "HI"
    with pytest.raises(ConfigError, match=r"no file missing\.py"):
        box.resolve(["missing.py:f"])
