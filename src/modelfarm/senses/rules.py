"""Fusion rules: conditions over sliding windows and across modalities, with hysteresis.

A rule's `when` is a small expression over event kinds (what processors emit):

    spo2 < 90 for 10s and (breathing_rate < 8 or speech contains "can't breathe")
    hr > 120 for 5s
    siren seen within 3s and people >= 1
    note contains "fall" within 60s

- `KIND OP NUMBER`: the latest reading of KIND satisfies the comparison (readings older than
  `stale_after`, 15 s by default, count as unknown, so false);
- `... for D`: it has satisfied it without a break for at least D (every reading in between);
- `... within D`: some reading in the last D satisfied it;
- `KIND contains "TEXT" [within D]`: a text event of KIND in the last D (default 30 s) contains
  TEXT, ignoring case, punctuation and the kind of apostrophe;
- `KIND seen [within D]`: any event of KIND in the last D (default 10 s);
- `and`, `or`, `not`, parentheses. Durations: `500ms`, `10s`, `2m`.

Time is stream time (seconds from the start of the stream, the same for every modality). A rule
raises one alert when its condition becomes true, then stays quiet until the condition has been
false for `clear_after` (hysteresis): one episode, one alert.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Literal, NoReturn

from modelfarm.errors import ConfigError
from modelfarm.senses.events import Alert, SenseEvent, Severity

STALE_AFTER = 15.0
DEFAULT_TEXT_WINDOW = 30.0
DEFAULT_SEEN_WINDOW = 10.0
_HISTORY = 4096  # events kept per kind for `within` windows

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<num>-?\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)?(?![\w.])
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op><=|>=|==|!=|<|>)
  | (?P<paren>[()])
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  )""",
    re.X,
)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})


def normalise_text(text: str) -> str:
    """Lowercase, one kind of apostrophe, punctuation and extra spaces removed."""
    text = text.translate(_APOSTROPHES).lower()
    text = re.sub(r"[^\w\s']", " ", text)
    return " ".join(text.split())


# -- the expression tree ----------------------------------------------------------------------


Truth = tuple[bool, list[SenseEvent], float]
"""(true?, the events that make it so, the stream time it became true)."""
FALSE: Truth = (False, [], 0.0)


@dataclass(slots=True)
class _Atom:
    kind: str
    text: str
    """The atom as written, for messages."""

    def value(self, state: _State, t: float) -> Truth:
        raise NotImplementedError


@dataclass(slots=True)
class Compare(_Atom):
    op: str = "<"
    threshold: float = 0.0
    hold: float | None = None
    """`for D`: seconds the comparison must have held without a break."""
    within: float | None = None

    def test(self, v: float) -> bool:
        t = self.threshold
        return {"<": v < t, "<=": v <= t, ">": v > t, ">=": v >= t, "==": v == t, "!=": v != t}[self.op]

    def value(self, state: _State, t: float) -> Truth:
        if self.within is not None:
            for e in reversed(state.history.get(self.kind, ())):
                if t - e.source_time > self.within:
                    break
                if e.value is not None and self.test(e.value):
                    return True, [e], e.source_time
            return FALSE
        latest = state.latest.get(self.kind)
        if latest is None or latest.value is None or t - latest.source_time > state.stale_after:
            return FALSE
        if not self.test(latest.value):
            return FALSE
        if self.hold is None:
            return True, [latest], latest.source_time
        since = state.since.get(id(self))
        if since is None or t - since < self.hold:
            return FALSE
        return True, [latest], since + self.hold  # true from the moment the hold was complete


@dataclass(slots=True)
class Contains(_Atom):
    phrase: str = ""
    within: float = DEFAULT_TEXT_WINDOW

    def value(self, state: _State, t: float) -> Truth:
        needle = normalise_text(self.phrase)
        for e in reversed(state.history.get(self.kind, ())):
            if t - e.source_time > self.within:
                break
            if e.text and needle in normalise_text(e.text):
                return True, [e], _evidence_time(e)
        return FALSE


@dataclass(slots=True)
class Seen(_Atom):
    within: float = DEFAULT_SEEN_WINDOW

    def value(self, state: _State, t: float) -> Truth:
        latest = state.latest.get(self.kind)
        if latest is not None and t - latest.source_time <= self.within:
            return True, [latest], latest.source_time
        return FALSE


@dataclass(slots=True)
class _Node:
    op: Literal["and", "or", "not"]
    parts: list[_Atom | _Node]

    def value(self, state: _State, t: float) -> Truth:
        if self.op == "not":
            ok, _, _ = self.parts[0].value(state, t)
            return (False, [], t) if ok else (True, [], t)
        evidence: list[SenseEvent] = []
        at = float("-inf")
        for part in self.parts:
            ok, ev, since = part.value(state, t)
            if self.op == "and" and not ok:
                return FALSE
            if ok:
                evidence += ev
                at = max(at, since)  # `and`: true once its last part is
                if self.op == "or":
                    return True, evidence, since
        return (True, evidence, at) if self.op == "and" else FALSE


Expr = _Atom | _Node


def atoms(expr: Expr) -> list[_Atom]:
    if isinstance(expr, _Atom):
        return [expr]
    return [a for p in expr.parts for a in atoms(p)]


# -- the parser -----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, where: str) -> None:
        self.text = text
        self.where = where
        self.tokens: list[tuple[str, str, str | None]] = []  # (type, value, unit)
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                self.fail(f"cannot read {text[pos:].strip()[:20]!r}")
            kind = m.lastgroup if m.lastgroup != "unit" else "num"
            value = m.group(kind or "")
            self.tokens.append((kind or "", value, m.group("unit") if kind == "num" else None))
            pos = m.end()
        self.i = 0

    def fail(self, why: str) -> NoReturn:
        raise ConfigError(f"{self.where}: {why} in `{self.text}` (see `modelfarm senses --help` for the rule syntax)")

    def peek(self) -> tuple[str, str, str | None] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str, str | None]:
        tok = self.peek()
        if tok is None:
            self.fail("the condition ends too early")
        self.i += 1
        return tok

    def word(self, *words: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == "word" and tok[1].lower() in words:
            self.i += 1
            return True
        return False

    def parse(self) -> Expr:
        expr = self.or_expr()
        if self.peek() is not None:
            self.fail(f"unexpected {self.tokens[self.i][1]!r}")
        return expr

    def or_expr(self) -> Expr:
        parts = [self.and_expr()]
        while self.word("or"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else _Node("or", parts)

    def and_expr(self) -> Expr:
        parts = [self.unary()]
        while self.word("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else _Node("and", parts)

    def unary(self) -> Expr:
        if self.word("not"):
            return _Node("not", [self.unary()])
        tok = self.peek()
        if tok is not None and tok[0] == "paren" and tok[1] == "(":
            self.i += 1
            inner = self.or_expr()
            close = self.peek()
            if close is None or close[1] != ")":
                self.fail("a `(` is not closed")
            self.i += 1
            return inner
        return self.atom()

    def duration(self) -> float:
        kind, value, unit = self.take()
        if kind != "num" or unit is None:
            self.fail(f"expected a duration such as 10s, got {value!r}")
        return float(value) * _UNITS[unit or "s"]

    def atom(self) -> _Atom:
        start = self.i
        kind, name, _ = self.take()
        if kind != "word":
            self.fail(f"expected an event kind, got {name!r}")
        if self.word("contains"):
            s_kind, s_value, _ = self.take()
            if s_kind != "str":
                self.fail("`contains` needs a quoted text")
            phrase = bytes(s_value[1:-1], "utf-8").decode("unicode_escape")
            within = self.duration() if self.word("within") else DEFAULT_TEXT_WINDOW
            return Contains(name, self._span(start), phrase, within)
        if self.word("seen"):
            within = self.duration() if self.word("within") else DEFAULT_SEEN_WINDOW
            return Seen(name, self._span(start), within)
        op_kind, op, _ = self.take()
        if op_kind != "op":
            self.fail(f"expected <, <=, >, >=, ==, !=, `contains` or `seen` after {name!r}")
        n_kind, number, unit = self.take()
        if n_kind != "num" or unit is not None:
            self.fail(f"expected a number after {op!r}, got {number!r}")
        hold = self.duration() if self.word("for") else None
        window = self.duration() if hold is None and self.word("within") else None
        return Compare(name, self._span(start), op, float(number), hold, window)

    def _span(self, start: int) -> str:
        return " ".join(t[1] + (t[2] or "") for t in self.tokens[start : self.i])


def parse_condition(text: str, where: str = "rule") -> Expr:
    return _Parser(text, where).parse()


# -- evaluation -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _State:
    stale_after: float
    latest: dict[str, SenseEvent] = field(default_factory=dict)
    history: dict[str, deque[SenseEvent]] = field(default_factory=dict)
    since: dict[int, float | None] = field(default_factory=dict)
    """id(Compare with `for`) -> stream time since which it has held without a break."""


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    when: str
    severity: Severity = "warning"
    clear_after: float = 10.0
    message: str | None = None
    explain: bool = False


@dataclass(slots=True)
class _Armed:
    rule: Rule
    expr: Expr
    holds: list[Compare]
    active: bool = False
    false_since: float | None = None


class RuleEngine:
    """Feed it events in any order across modalities; it returns the alerts they raise."""

    def __init__(self, pipeline: str, rules: list[Rule], *, stale_after: float = STALE_AFTER) -> None:
        self.pipeline = pipeline
        self.state = _State(stale_after)
        self.clock = 0.0
        self._rules = []
        for r in rules:
            expr = parse_condition(r.when, f"rule {r.name!r}")
            self._rules.append(_Armed(r, expr, [a for a in atoms(expr) if isinstance(a, Compare) and a.hold]))

    @property
    def kinds(self) -> set[str]:
        """Every event kind the rules refer to."""
        return {a.kind for armed in self._rules for a in atoms(armed.expr)}

    def observe(self, event: SenseEvent) -> list[Alert]:
        s = self.state
        newer = event.kind not in s.latest or event.source_time >= s.latest[event.kind].source_time
        if newer:
            s.latest[event.kind] = event
        s.history.setdefault(event.kind, deque(maxlen=_HISTORY)).append(event)
        if newer and event.value is not None:
            for armed in self._rules:
                for c in armed.holds:
                    if c.kind == event.kind:
                        held = c.test(event.value)
                        if not held:
                            s.since[id(c)] = None
                        elif s.since.get(id(c)) is None:
                            s.since[id(c)] = event.source_time
        self.clock = max(self.clock, event.source_time)
        return self.evaluate(self.clock)

    def evaluate(self, t: float) -> list[Alert]:
        """Check every rule at stream time `t` (also call it on a timer: `for` conditions can
        come true with no new event)."""
        self.clock = max(self.clock, t)
        raised: list[Alert] = []
        for armed in self._rules:
            ok, evidence, at = armed.expr.value(self.state, self.clock)
            at = min(at, self.clock) if at != float("-inf") else self.clock
            if ok:
                armed.false_since = None
                if not armed.active:
                    armed.active = True
                    r = armed.rule
                    raised.append(
                        Alert(
                            id="alert-" + uuid.uuid4().hex[:16], pipeline=self.pipeline, rule=r.name,
                            severity=r.severity, source_time=at, emitted_at=time.time(),
                            message=r.message or f"{r.name}: {r.when}", evidence=_unique(evidence),
                        )
                    )  # fmt: skip
            elif armed.active:
                if armed.false_since is None:
                    armed.false_since = self.clock
                if self.clock - armed.false_since >= armed.rule.clear_after:
                    armed.active, armed.false_since = False, None
        return raised


def _evidence_time(e: SenseEvent) -> float:
    """When the evidence was complete in the stream: a speech segment's end, else its time."""
    end = e.data.get("end")
    return float(end) if isinstance(end, int | float) else e.source_time


def _unique(events: list[SenseEvent]) -> list[SenseEvent]:
    seen: set[int] = set()
    out = []
    for e in events:
        if id(e) not in seen:
            seen.add(id(e))
            out.append(e)
    return out
