"""`modelfarm serve --ray` as a user runs it: starts a local Ray, serves, stops on a signal,
and leaves nothing running. (Its own module, so that it never overlaps test_ray_serve's Ray.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.echo_server import EchoServer

pytest.importorskip("ray.serve", reason="the ray extra is not installed: pip install -e '.[ray]'")


def _session(sid: int) -> list[int]:
    """Live processes of session `sid` (zombies count as gone)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def test_serve_ray_answers_and_stops_cleanly(tmp_path: Path) -> None:
    echo = EchoServer(free_port()).start()
    port = free_port()
    farm = tmp_path / "farm.toml"
    farm.write_text(
        '[farm]\nname = "cli-ray"\n\n[ray]\nlocal_cpus = 2\n\n'
        f'[[models]]\nname = "cloud"\nbackend = "openai"\nbase_url = "{echo.base_url}"\n'
    )
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelfarm", "serve", "--ray", "--farm", str(farm), "--port", str(port),
         "--ledger", str(tmp_path / "ledger.db")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={k: v for k, v in os.environ.items() if k != "MODELFARM_API_KEYS"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        text = ""
        while "serving farm" not in text and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            text = (tmp_path / "serve.log").read_text(errors="replace")
        assert "serving farm" in text, text[-3000:]
        assert f"http://127.0.0.1:{port}/v1" in text
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": "cloud", "messages": [{"role": "user", "content": "ping"}]},
            timeout=60,
        )
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "You said: ping"
        assert r.headers.get_list("x-request-id") == [r.json()["id"]], "one request id, the ledger's"
        assert len(_session(proc.pid)) > 3, "Ray's daemons and workers run in the command's session"
        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=60) == 0
        deadline = time.monotonic() + 20
        while (left := _session(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"processes left running after the stop: {left}"
    finally:
        if proc.poll() is None or _session(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        echo.stop()
