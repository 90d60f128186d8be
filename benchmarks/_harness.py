"""Shared helpers for the benchmark scripts: loopback servers as process groups, readiness, CPU time.

Every server is started in its own session (its own process group) so that it and any workers it
forks can be stopped together, and so that its CPU time can be read from /proc for the whole group.
Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def default_python() -> str:
    """The project's .venv Python if there is one (servers and tools run with it), else this one."""
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class Server:
    """A subprocess in its own process group, with its output in a log file."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, *, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            cwd=str(log.parent),
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, url: str, timeout: float) -> None:
        """Poll `url` until it answers 200; raise with the server's log if it dies or times out."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with status {self.proc.returncode} before it was ready; "
                        f"its log ({self.log}):\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} was not ready at {url} after {timeout:.0f} s; log:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """User + system CPU of every live process in this server's group, plus reaped children."""
        return group_cpu_seconds(self.pid)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the whole process group, then SIGKILL whatever is left after `grace` seconds."""
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=grace)
            # Workers may outlive the leader: kill the group in any case.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        finally:
            self._log_file.close()


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[list[Server]]:
    """Stop every server in `servers` (including ones appended inside the block) on exit."""
    try:
        yield servers
    finally:
        for server in reversed(servers):
            server.stop()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def _processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, stat fields after the command name) of every process that can be read now."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))) is not None:
            yield int(entry), fields


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (utime + stime) of all processes in process group `pgid`.

    The leader also counts its reaped children (cutime + cstime). Fields after the command name,
    0-based: state=0 ppid=1 pgrp=2 session=3 ... utime=11 stime=12 cutime=13 cstime=14.
    """
    ticks = 0
    for pid, fields in _processes():
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
            if pid == pgid:
                ticks += int(fields[13]) + int(fields[14])
    return ticks / _CLK_TCK


def session_cpu_seconds(sid: int) -> float:
    """CPU seconds of every process in session `sid` and of the children each has reaped: a
    server and everything it started, even in process groups of their own (Ray's workers)."""
    ticks = sum(sum(int(f) for f in fields[11:15]) for _, fields in _processes() if int(fields[3]) == sid)
    return ticks / _CLK_TCK


def session_pids(sid: int) -> list[int]:
    """Live processes of session `sid` (zombies count as gone)."""
    return [pid for pid, fields in _processes() if int(fields[3]) == sid and fields[0] != "Z"]


def _system_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, from the first line of /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _own_cpu_seconds() -> float:
    """CPU of this process and of every child it has reaped (and their reaped children)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def busy_fraction(seconds: float = 1.0) -> float:
    """Share of the machine's CPU in use by anything over the next `seconds`."""
    busy0, total0 = _system_ticks()
    time.sleep(seconds)
    busy1, total1 = _system_ticks()
    return (busy1 - busy0) / max(total1 - total0, 1)


def wait_quiet(limit: float, max_wait: float, emit: bool = True) -> float:
    """Wait (at most `max_wait` s) until the machine's CPU use is under `limit`; return the last reading."""
    deadline = time.monotonic() + max_wait
    said = False
    while True:
        busy = busy_fraction(1.0)
        if busy <= limit or time.monotonic() >= deadline:
            break
        if emit and not said:
            eprint(f"machine busy ({busy:.0%} CPU in use by other processes); waiting up to {max_wait:.0f} s ...")
            said = True
    if emit and busy > limit:
        eprint(f"warning: the machine is still busy ({busy:.0%} CPU in use by others); going on, results are noisy")
    return busy


class Disturbance:
    """CPU used by other processes while a measurement runs, as a share of the whole machine.

    Ours: this process (all its threads), the children it has reaped (load generators), and the
    process groups of `servers`. Everything else busy on the machine counts as a disturbance.
    """

    def __init__(self, servers: Sequence[Server]) -> None:
        self.servers = list(servers)
        self._busy0, self._total0 = _system_ticks()
        self._ours0 = self._ours()

    def _ours(self) -> float:
        return _own_cpu_seconds() + sum(s.cpu_seconds() for s in self.servers)

    def share(self) -> float:
        busy1, total1 = _system_ticks()
        ours = (self._ours() - self._ours0) * _CLK_TCK
        return max(0.0, (busy1 - self._busy0) - ours) / max(total1 - self._total0, 1)


def add_quiet_options(ap: argparse.ArgumentParser, *, what: str, retries: int) -> None:
    """Options shared by the benchmarks: wait for a quiet machine, re-run disturbed measurements."""
    ap.add_argument(
        "--max-busy",
        type=float,
        default=0.15,
        help="CPU share other processes may use at the start; above it, wait (see --wait-quiet)",
    )
    ap.add_argument(
        "--wait-quiet", type=float, default=120.0, help="seconds to wait for a quiet machine, then go anyway"
    )
    ap.add_argument(
        "--max-disturbance",
        type=float,
        default=0.10,
        help=f"re-run {what} when other processes took more than this share of the machine",
    )
    ap.add_argument("--retries", type=int, default=retries, help=f"most re-runs of {what}")
    ap.add_argument("--json", action="store_true", help="print only the final JSON line on stdout")


def stop_on_sigterm() -> None:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt, so that `finally` blocks stop the servers."""

    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def git_state() -> str | None:
    """The checkout's commit, with `+dirty` when src/ has uncommitted changes (None outside git)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def machine_info() -> dict[str, object]:
    """When, at which commit and on what the benchmark ran: the head of every result line."""
    import datetime as dt
    import platform

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "cpus": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
        "python": platform.python_version(),
    }


def noise_note(shares: Sequence[float], reruns: int, limit: float) -> str:
    """One line on how much other processes used the machine during the measurements that were kept."""
    if not shares:
        return "no measurements kept"
    worst = max(shares)
    note = (
        f"other processes during the kept measurements: median {median(shares):.0%}, max {worst:.0%} "
        f"of the machine; {reruns} measurement(s) re-run because others took more than {limit:.0%}"
    )
    return note + ("  (WARNING: some kept measurements were disturbed)" if worst > limit else "")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def eprint(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width text table (numbers right-aligned)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "-" if value != value else f"{value:.2f}"
        return "-" if value is None else str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int | float) or row[i] is None for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(r) for r in cells)
    return "\n".join(out)
