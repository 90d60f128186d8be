"""`modelfarm router collect`: a farm's own outcomes, graded, resumable, ready to train on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from modelfarm.routing.learned.collect import grade, read_graded
from modelfarm.routing.learned.outcomes import OutcomesError, read_outcomes
from tests.conftest import run_cli, small_model_toml
from tests.echo_server import EchoServer


@pytest.mark.parametrize(
    ("answers", "reply", "score"),
    [
        (["29"], "7 pens cost 21 dollars, so the change is 29.", 1.0),
        (["29"], "The change is 29 dollars, or 21 less than 50.", 0.0),  # the last number counts
        (["1,200"], "That makes 1200", 1.0),
        (["2.5"], "It takes 2.50 hours", 1.0),
        (["Tokyo"], "The capital of Japan is tokyo.", 1.0),
        (["cat"], "A category error.", 0.0),  # whole words only
        (["New York", "NYC"], "It is NYC!", 1.0),
        (["paris"], "", 0.0),
    ],
)
def test_grade(answers: list[str], reply: str, score: float) -> None:
    assert grade(answers, reply) == score


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not JSON"),
        ('{"answer": "x"}', 'line 2: needs a non-empty "prompt"'),
        ('{"prompt": "hi"}', 'line 2: needs "answer"'),
        ('{"prompt": "hi", "answer": [], "id": "b"}', 'line 2: needs "answer"'),
        ('{"prompt": "hi", "answer": "x", "id": "a"}', "id 'a' is used twice"),
    ],
)
def test_bad_graded_prompts_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text('{"prompt": "first", "answer": 1, "id": "a"}\n' + line + "\n")
    with pytest.raises(OutcomesError, match=message):
        read_graded(path)


def test_collect_writes_outcomes_resumes_and_trains(tmp_path: Path, echo: EchoServer) -> None:
    farm = tmp_path / "farm.toml"
    farm.write_text(
        small_model_toml("small")
        + f'\n[[models]]\nname = "parrot"\nbackend = "openai"\nbase_url = "{echo.base_url}"\nprice_in = 1\n'
    )
    graded = tmp_path / "g.jsonl"
    items = [
        {"prompt": f"Repeat after me: {n}", "answer": n, "group": f"g{n % 3}"} if n % 2 else
        {"prompt": f"What is {n} plus one?", "answer": n + 1}
        for n in range(12)
    ]  # fmt: skip
    graded.write_text("".join(json.dumps(i) + "\n" for i in items[:8]))
    out = tmp_path / "outcomes.csv"
    done = run_cli("router", "collect", "--farm", str(farm), "--prompts", str(graded), "--out", str(out),
                   "--max-tokens", "8")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "wrote 8 new rows" in done.stdout
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == [str(i) for i in range(1, 9)]
    # the parrot echoes the prompt: right on "Repeat after me: N", wrong on "What is N plus one?"
    assert [r["score__parrot"] for r in rows] == ["0", "1"] * 4
    assert {r["score__small"] for r in rows} <= {"0", "1"}
    assert rows[1]["group"] == "g1"

    # a longer prompt file: only the new prompts run, appended to the same file
    graded.write_text("".join(json.dumps(i) + "\n" for i in items))
    again = run_cli("router", "collect", "--farm", str(farm), "--prompts", str(graded), "--out", str(out),
                    "--max-tokens", "8")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "wrote 4 new rows" in again.stdout
    data = read_outcomes([out])
    assert len(data) == 12 and data.models == ["small", "parrot"]  # cheapest first
    assert len(echo.received) == 12  # nothing answered twice

    other = run_cli("router", "collect", "--farm", str(farm), "--prompts", str(graded), "--out", str(out),
                    "--models", "parrot")  # fmt: skip
    assert other.returncode == 2 and "already scores small, parrot" in other.stderr
    unknown = run_cli("router", "collect", "--farm", str(farm), "--prompts", str(graded), "--out", str(tmp_path / "x"),
                      "--models", "nope")  # fmt: skip
    assert unknown.returncode == 2 and "nope" in unknown.stderr

    trained = run_cli("router", "train", "--data", str(out), "--embedding", "static", "--out", str(tmp_path / "r.json"))
    assert trained.returncode == 0, trained.stderr
