"""Sense pipelines in the gateway: text in by POST, alerts out by SSE and by webhook."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from modelfarm.manifest import parse_manifest
from tests.conftest import free_port, start_gateway

FARM = """
[farm]
name = "notes"
ledger = "{ledger}"

[senses.ward]
autostart = true
webhooks = ["http://127.0.0.1:{hook}/hook"]

[[senses.ward.processors]]
type = "text"
keywords = ["fell"]

[[senses.ward.rules]]
name = "fall"
when = 'keyword contains "fell" within 60s'
severity = "critical"

[[senses.ward.rules]]
name = "low_sats"
when = "spo2 < 90"

[senses.idle]
[[senses.idle.processors]]
type = "text"
"""


def read_sse(url: str, into: list[tuple[str, dict[str, Any]]], want: int) -> None:
    """Collect `want` events, then hang up."""
    with httpx.stream("GET", url, timeout=30) as r:
        kind = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                into.append((kind, json.loads(line[6:])))
                if len(into) >= want:
                    return


def test_posted_text_raises_alerts_on_sse_and_webhooks(tmp_path: Path) -> None:
    hook_port = free_port()
    received: list[dict[str, Any]] = []

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def hook(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({"ok": True})

    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), port=hook_port))
    threading.Thread(target=server.run, daemon=True).start()
    manifest = parse_manifest(
        FARM.replace("{ledger}", str(tmp_path / "ledger.db")).replace("{hook}", str(hook_port)),
        source=tmp_path / "farm.toml",
    )
    gw = start_gateway(manifest, tmp_path / "ledger.db")
    events: list[tuple[str, dict[str, Any]]] = []
    try:
        listing = httpx.get(gw.base_url + "/senses").json()["data"]
        assert {p["name"]: p["running"] for p in listing} == {"ward": True, "idle": False}
        reader = threading.Thread(target=read_sse, args=(gw.base_url + "/senses/ward/alerts", events, 2))
        reader.start()
        time.sleep(0.5)
        for text in ("Obs fine, sats 97%.", "Patient FELL getting out of bed, sats 88%"):
            r = httpx.post(gw.base_url + "/senses/ward/text", json={"text": text, "author": "nurse"})
            assert r.status_code == 202 and r.json()["source_time"] >= 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (len(events) < 2 or len(received) < 2):
            time.sleep(0.05)
        assert sorted(d["rule"] for k, d in events if k == "alert") == ["fall", "low_sats"]
        assert sorted(d["rule"] for d in received) == ["fall", "low_sats"]
        fall = next(d for _, d in events if d["rule"] == "fall")
        assert fall["severity"] == "critical" and fall["evidence"][0]["text"] == "fell"

        replay = []
        with httpx.stream("GET", gw.base_url + "/senses/ward/alerts?replay=5", timeout=10) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    replay.append(json.loads(line[6:])["rule"])
                if len(replay) == 2:
                    break
        assert sorted(replay) == ["fall", "low_sats"]  # a late subscriber can catch up

        assert httpx.post(gw.base_url + "/senses/ward/text", json={"text": ""}).status_code == 400
        idle = httpx.post(gw.base_url + "/senses/idle/text", json={"text": "x"})
        assert idle.status_code == 404 and "autostart" in idle.json()["error"]["message"]
        assert httpx.get(gw.base_url + "/senses/nope/alerts").status_code == 404
        reader.join(timeout=5)
    finally:
        gw.stop()
        server.should_exit = True
