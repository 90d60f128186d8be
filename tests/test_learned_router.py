"""The learned quality router on generated outcomes where quality depends learnably on the text.

Each generated prompt mixes "hard" topic words with "easy" ones; its share of hard words is its
difficulty d, and model m answers correctly with probability sigmoid(skill_m - 12 d). The cheap
model `tiny` fails hard prompts, `mid` fails the hardest, `big` rarely fails. Library tests use a
stand-in embedding (a random unit vector per text: no signal, so the text features must learn);
the command-line test uses the real bundled MiniLM on a few rows.
"""

from __future__ import annotations

import csv
import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from modelfarm.errors import ConfigError
from modelfarm.routing.learned import OutcomesError, QualityRouter, evaluate, metrics, read_outcomes, train
from modelfarm.routing.learned.cli import app
from modelfarm.routing.learned.plot import plot_curves

HARD = ["quantum", "entropy", "tensor", "manifold", "eigenvalue", "topology", "lagrangian", "spinor"]
EASY = ["apple", "count", "plus", "color", "dog", "sum", "house", "tree"]
SKILL = {"tiny": 3.0, "mid": 6.5, "big": 11.0}  # logit of correctness at difficulty 0
PRICE = {"tiny": 0.0001, "mid": 0.001, "big": 0.01}  # USD per row
SLOTS = 12  # topic words per prompt: difficulty takes 13 levels


def outcomes_csv(
    path: Path, n: int, seed: int, *, costs: bool = True, models: tuple[str, ...] = ("big", "tiny", "mid")
) -> Path:
    """Write n generated rows; columns deliberately not in price order."""
    rng = np.random.default_rng(seed)
    header = ["id", "group", "prompt"] + [f"score__{m}" for m in models]
    header += [f"cost__{m}" for m in models] if costs else []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in range(n):
            hard = int(rng.integers(0, SLOTS + 1))
            words = list(rng.choice(HARD, hard)) + list(rng.choice(EASY, SLOTS - hard))
            rng.shuffle(words)
            d = hard / SLOTS
            scores = [float(rng.random() < 1 / (1 + np.exp(-(SKILL[m] - 12 * d)))) for m in models]
            row = [f"q{seed}-{i}", f"g{seed}-{i // 2}", "please answer: " + " ".join(words), *scores]
            writer.writerow(row + ([PRICE[m] for m in models] if costs else []))
    return path


def fake_embed(texts: list[str]) -> np.ndarray:
    """(N, 384) a fixed random unit vector per text: a stand-in that carries no signal."""
    rows = []
    for text in texts:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(384)
        rows.append(v / np.linalg.norm(v))
    return np.array(rows, dtype=np.float32)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[QualityRouter, Path]:
    folder = tmp_path_factory.mktemp("learned")
    data = read_outcomes([outcomes_csv(folder / "train.csv", 600, seed=1)])
    return train(data, fake_embed(data.texts)), outcomes_csv(folder / "held_out.csv", 600, seed=2)


def test_trains_n_models_ordered_by_cost_and_predicts_quality(fitted: tuple[QualityRouter, Path]) -> None:
    router, held_out = fitted
    assert router.models == ["tiny", "mid", "big"]  # from the cost__ columns, not column order
    data = read_outcomes([held_out]).select(router.models)
    quality = router.predict(fake_embed(data.texts), data.texts)
    assert quality.shape == (len(data), 3)
    assert quality.min() >= 0.0 and quality.max() <= 1.0
    for j in range(3):  # predicted quality ranks the prompts like the realised quality does
        right, wrong = data.quality[:, j] == 1, data.quality[:, j] == 0
        assert quality[right, j].mean() > quality[wrong, j].mean() + 0.1
    # calibrated: the mean prediction is close to the realised rate per model
    np.testing.assert_allclose(quality.mean(axis=0), data.quality.mean(axis=0), atol=0.06)


def test_strong_score_is_higher_where_the_strong_model_is_needed(fitted: tuple[QualityRouter, Path]) -> None:
    router, held_out = fitted
    data = read_outcomes([held_out]).select(router.models)
    scores = router.strong_score(fake_embed(data.texts), data.texts, "big")
    needs_big = (data.quality[:, 2] == 1) & (data.quality[:, :2].max(axis=1) == 0)
    assert scores.shape == (len(data),)
    assert scores[needs_big].mean() > scores[~needs_big].mean() + 0.2


@pytest.mark.parametrize("share", [0.2, 0.5])
def test_share_calibration_holds_on_held_out_prompts(fitted: tuple[QualityRouter, Path], share: float) -> None:
    router, held_out = fitted
    target = router.calibrate_share(router.calibration, share)
    data = read_outcomes([held_out])
    quality = router.predict(fake_embed(data.texts), data.texts)
    chosen = [router.choose(row, target) for row in quality]
    assert abs(np.mean(np.array(chosen) == 2) - share) < 0.05


def test_quality_calibration_and_choose(fitted: tuple[QualityRouter, Path]) -> None:
    router, _ = fitted
    low, high = (router.calibrate_quality(router.calibration, q) for q in (0.6, 0.9))
    assert low < high
    row = np.array([0.3, 0.7, 0.95])
    assert router.choose(row, 0.2) == 0 and router.choose(row, 0.5) == 1 and router.choose(row, 0.9) == 2
    assert router.choose(row, 0.99) == 2  # nobody clears it: the most expensive model answers


def test_save_and_load_give_identical_predictions(fitted: tuple[QualityRouter, Path], tmp_path: Path) -> None:
    router, held_out = fitted
    router.save(tmp_path / "router.json")
    loaded = QualityRouter.load(tmp_path / "router.json")
    data = read_outcomes([held_out])
    emb = fake_embed(data.texts)
    assert loaded.models == router.models and loaded.costs == router.costs
    np.testing.assert_array_equal(loaded.predict(emb, data.texts), router.predict(emb, data.texts))
    assert json.loads((tmp_path / "router.json").read_text())["format"] == "modelfarm.quality-router"


class _Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def test_a_pickle_payload_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    bad = tmp_path / "router.json"
    bad.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(OutcomesError, match="not a router file"):
        QualityRouter.load(bad)
    assert not marker.exists()
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(OutcomesError, match="damaged router file"):
        QualityRouter.load(bad)


@pytest.mark.parametrize(
    ("content", "names"),
    [
        ("text,score__a,score__b\nhi,1,0\n", ["'prompt'"]),
        ("prompt,score__a,score__b\nhi,1,1.5\n", ["'score__b'", "row 1"]),
        ("prompt,score__a,score__b\nhi,1,\n", ["'score__b'", "row 1"]),
        ("prompt,score__a,score__b,cost__c\nhi,1,0,3\n", ["'cost__c'"]),
        ("prompt,score__a,score__b,cost__a,cost__b\nhi,1,0,-1,2\n", ["'cost__a'"]),
        ("prompt,score__a\nhi,1\n", ["score__<model>", "two models"]),
    ],
)
def test_bad_outcomes_files_name_file_and_column(tmp_path: Path, content: str, names: list[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(OutcomesError) as caught:
        read_outcomes([path])
    assert isinstance(caught.value, ConfigError)
    assert str(path) in caught.value.message
    for name in names:
        assert name in caught.value.message


def test_several_files_read_as_one(tmp_path: Path) -> None:
    one = tmp_path / "one.csv"
    one.write_text("prompt,score__a,score__b\nhi,1,0\nho,0,1\n")
    two = tmp_path / "two.csv"
    two.write_text("score__b,prompt,score__a,extra\n0.5,hey,0.25,x\n")
    assert read_outcomes([one]).ids == ["1", "2"]  # no id column: the data row number
    both = read_outcomes([one, two])
    assert both.ids == ["one:1", "one:2", "two:1"] and both.models == ["a", "b"]
    np.testing.assert_array_equal(both.quality, [[1, 0], [0, 1], [0.25, 0.5]])
    three = tmp_path / "three.csv"
    three.write_text("prompt,score__a,score__c\nhi,1,0\n")
    with pytest.raises(OutcomesError, match="same score__<model> columns"):
        read_outcomes([one, three])


def test_pair_metrics_on_a_hand_computed_example() -> None:
    # 10 rows; strong always right, weak wrong on the 5 rows the router scores highest.
    strong = np.ones(10)
    weak = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1], dtype=float)
    scores = np.arange(10, 0, -1, dtype=float)
    # Thresholds 1, 1.9, ..., 10 send 10, 9, ..., 1, 0 rows to strong; accuracy rises 0.1 per call
    # up to 5 calls, then stays 1: area 0.375 + 0.5 = 0.875, APGR (0.875 - 0.5) / 0.5 = 0.75.
    ours = metrics.score_router(scores, strong, weak)
    np.testing.assert_allclose(ours.curve.x, np.linspace(0, 1, 11))
    assert ours.apgr == pytest.approx(0.75)
    assert ours.cpt50 == pytest.approx(0.25)  # accuracy 0.75 at 2.5 of 10 calls
    assert ours.cpt80 == pytest.approx(0.40)
    assert metrics.score_oracle(strong, weak).apgr == pytest.approx(0.75)
    backwards = metrics.score_router(-scores, strong, weak)
    assert backwards.apgr == pytest.approx(0.25)


def test_random_is_about_half_and_the_oracle_beats_it() -> None:
    rng = np.random.default_rng(0)
    strong = (rng.random(4000) < 0.8).astype(float)
    weak = (rng.random(4000) < 0.6).astype(float)
    random = metrics.score_random(strong, weak)
    assert random.apgr == pytest.approx(0.5, abs=0.03)
    assert random.cpt50 == pytest.approx(0.5, abs=0.05)
    assert metrics.score_oracle(strong, weak).apgr > 1.0


def test_n_model_eval_beats_random_and_plots(fitted: tuple[QualityRouter, Path], tmp_path: Path) -> None:
    router, held_out = fitted
    data = read_outcomes([held_out])
    result = evaluate(router, data, router.predict(fake_embed(data.texts), data.texts))
    assert result.multi is not None and result.pair is None
    gains = {name: score.area_gain for name, score in result.multi.items()}
    # random: the router's own share of prompts per model, spread over the prompts at random
    assert gains["oracle"] > gains["router"] > gains["random"] + 0.05
    np.testing.assert_allclose(result.multi["random"].curve.x, result.multi["router"].curve.x)
    png = tmp_path / "curves.png"
    curves = {name: score.curve for name, score in result.multi.items()}
    plot_curves(png, curves, title="t", xlabel="cost", references=result.single)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_line_train_score_eval(tmp_path: Path) -> None:
    """The three commands end to end, with the real MiniLM embeddings (few rows: it is slow)."""
    data = outcomes_csv(tmp_path / "train.csv", 80, seed=3, costs=False)
    router = tmp_path / "router.json"
    runner = CliRunner()
    done = runner.invoke(app, ["train", "--data", str(data), "--out", str(router), "--models", "tiny,big"])
    assert done.exit_code == 0, done.output
    assert QualityRouter.load(router).models == ["tiny", "big"]

    scores = tmp_path / "scores.csv"
    args = ["score", "--router", str(router), "--data", str(data), "--strong", "big", "--out", str(scores)]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader(scores.open()))
    assert list(rows[0]) == ["id", "score"] and len(rows) == 80
    assert rows[0]["id"] == "q3-0"

    png = tmp_path / "curves.png"
    done = runner.invoke(app, ["eval", "--router", str(router), "--data", str(data), "--plot", str(png), "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert set(report["pair"]) == {"router", "random", "oracle"}
    assert report["pair"]["oracle"]["apgr"] >= report["pair"]["router"]["apgr"]
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_command_line_reports_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,score__a,score__b\nhi,1,yes\n")
    done = CliRunner().invoke(app, ["train", "--data", str(bad), "--out", str(tmp_path / "r.json")])
    assert done.exit_code == 2
    assert "score__b" in done.output and not (tmp_path / "r.json").exists()


def test_weakness_checks_margin_and_confidence() -> None:
    from modelfarm.routing.execute import mean_margin, weakness
    from modelfarm.types import ChatResult, TokenLogprob, Usage

    torn = [TokenLogprob("a", -0.6, (("a", -0.6), ("b", -0.8))), TokenLogprob("c", -0.1, (("c", -0.1), ("d", -3.0)))]
    assert mean_margin(torn) == pytest.approx((0.2 + 2.9) / 2)
    assert mean_margin([TokenLogprob("a", -0.1)]) is None  # no alternatives listed: no margin
    answer = ChatResult("a c", "stop", Usage(), torn)
    assert weakness(answer, -1.0) is None
    assert "margin" in (weakness(answer, -1.0, min_margin=2.0) or "")
    assert weakness(answer, -1.0, min_margin=1.0) is None
    # mean log-prob -0.35: answer probability 0.70; with a router posterior of 0.6 -> 0.42
    assert weakness(answer, -1.0, min_confidence=0.5) is None
    assert "router 0.60 x answer 0.70 = 0.42" in (weakness(answer, -1.0, min_confidence=0.5, posterior=0.6) or "")
