"""The learned quality router: predicts how well each model in the farm answers a prompt, and
picks the cheapest one that clears a target calibrated to a brain share or a quality.

    from modelfarm.routing.learned import QualityRouter, read_outcomes, train

    data = read_outcomes([Path("outcomes.csv")])        # prompt, score__<model>..., cost__<model>...
    router = train(data, embedder.encode(data.texts))   # (N, 384) MiniLM embeddings
    router.save("router.json")                          # JSON only: loading never runs code
    router = QualityRouter.load("router.json")

    quality = router.predict(embeddings, texts)         # (N, M) in [0, 1], models cheap -> expensive
    need = router.strong_score(embeddings, texts, "gpt-4")  # (N,) RouteLLM's "needs the strong model"
    target = router.calibrate_share(router.calibration, 0.2)  # about 20% of prompts to the brain
    target = router.calibrate_quality(router.calibration, 0.8)  # or: mean predicted quality 0.8
    model = router.models[router.choose(quality[0], target)]

`QualityRouter.calibration` holds out-of-fold predictions on the training rows, the right sample
to calibrate a target on. `evaluate` gives RouteLLM's APGR / CPT(50%) / CPT(80%) for two models or
the cost/quality curve for N, beside random and oracle routing (`metrics` has the formulas).
The `modelfarm router` commands (`cli.app`) wrap all of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelfarm.routing.learned.evaluation import Evaluation, evaluate
    from modelfarm.routing.learned.model import QualityRouter
    from modelfarm.routing.learned.outcomes import Outcomes, OutcomesError, read_outcomes
    from modelfarm.routing.learned.training import train

__all__ = ["Evaluation", "Outcomes", "OutcomesError", "QualityRouter", "evaluate", "read_outcomes", "train"]

# Loaded on first use, so `modelfarm --help` (which mounts `cli.app`) does not pay for scipy.
_HOME = {
    "Evaluation": "evaluation",
    "evaluate": "evaluation",
    "QualityRouter": "model",
    "Outcomes": "outcomes",
    "OutcomesError": "outcomes",
    "read_outcomes": "outcomes",
    "train": "training",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
