"""The inbox example on the real local models: the brain plans, `middle` works, the brain merges.

Slow (a few minutes on 2 cores: every call is real generation), so it runs once, with shorter
answers than the example's defaults. Greedy decoding keeps it repeatable on one build.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from modelfarm.agents.calls import ServiceCaller
from modelfarm.agents.plan import parse_plan
from modelfarm.agents.run import AgentRuns
from modelfarm.ledger import Ledger
from modelfarm.manifest import load_manifest
from modelfarm.models.pool import Pool
from modelfarm.routing.router import Router
from modelfarm.serve.metrics import Metrics
from modelfarm.serve.service import Service

INBOX = Path(__file__).resolve().parents[1] / "examples" / "inbox"


def test_inbox_plan_runs_in_parallel_branches_and_flags_the_phishing_mail(tmp_path: Path) -> None:
    manifest = load_manifest(INBOX / "farm.toml")
    manifest = manifest.model_copy(
        update={
            "agents": [a.model_copy(update={"max_tokens": min(a.max_tokens, 128)}) for a in manifest.agents],
            "orchestration": manifest.orchestration.model_copy(update={"answer_max_tokens": 200}),
        }
    )
    task = (INBOX / "task.txt").read_text().strip()

    async def run() -> dict[str, object]:
        pool = Pool(manifest)
        book = Ledger(tmp_path / "ledger.db")
        try:
            service = Service(pool, book, Metrics(pool), Router(manifest, pool))
            return (await AgentRuns(manifest, ServiceCaller(service), book).run(task)).as_dict()
        finally:
            await pool.aclose()
            book.close()

    trace = asyncio.run(run())
    names = [a.name for a in manifest.agents]
    plan = parse_plan(trace["plan"], names, max_steps=64, max_depth=64)  # type: ignore[arg-type]
    assert plan.width >= 2, f"no two steps could run at once: {trace['plan']}"
    assert trace["status"] == "ok", trace["error"]
    answer = str(trace["answer"]).lower()
    assert any(k in answer for k in ("phishing", "micros0ft", "microsoft 365", "suspended")), answer
