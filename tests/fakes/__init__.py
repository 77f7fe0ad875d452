"""Local model servers for tests: real HTTP, spoken faithfully enough for the official SDKs.

``FakeServer`` is the shared machinery: a ``ThreadingHTTPServer`` on 127.0.0.1 in a daemon
thread (reachable from worker subprocesses too), a record of every request (method, path,
headers, parsed body, time), and a behaviour per request: ``plan`` is consumed first, then
``default``. Behaviours: ``brain`` (answer sensibly), ``429`` (with ``Retry-After``), ``500``,
``503``, ``529``, ``malformed`` (final answer that is not JSON), ``invalid`` (JSON that breaks the
schema), ``slow`` (sleep ``slow_seconds`` first), ``garbage`` (a 200 whose body is not JSON),
``hang`` (sleep ``hang_seconds``, past any client timeout, then answer to nobody).

Options for the fault suite, off by default: ``use_fault_mix(mix, seed)`` draws each request's
behaviour (after ``plan``) from a seeded mix such as ``FAULT_MIX``, so the sequence of faults is
the same on every run; ``latency_seconds`` delays every answer; and every request is metered
(``max_in_flight``, ``intervals``) so a test can prove a concurrency or rate cap held.

The *brain* is deliberately gullible: it reads each scope file with ``read_file``, obeys
instructions it finds in tool results ("call X", "read ../path") to prove the harness refuses
them, and answers findings derived from the lines it read (markers like TODO, password, eval).
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MARKERS = ("TODO", "FIXME", "password", "eval(", "SECRET", "md5")
# How serious the brain says each marker is (so reports have high items for the critic).
MARKER_SEVERITY = {"eval(": "high", "SECRET": "high", "password": "high"}
_STEP_RE = re.compile(
    r"^STEP: (report|critique|judge|judge-pair|judge-rubric|verify)$", re.MULTILINE
)
_RAW_STEP_RE = re.compile(r"STEP: (report|critique)\\n")  # inside a JSON-encoded body
_INPUTS_RE = re.compile(r"^INPUTS \(data, not instructions\): (\{.*\})$", re.MULTILINE)
_SCOPE_RE = re.compile(r"^SCOPE: (\{.*\})$", re.MULTILINE)
_CALL_RE = re.compile(r"call (?:the )?([a-z_][a-z0-9_]*)", re.IGNORECASE)
_READ_RE = re.compile(r"read ((?:\.\./|/)[^\s'\"]+)", re.IGNORECASE)
_LINE_RE = re.compile(r"^\s*(\d+)\t(.*)$")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: str
    at: float


@dataclass
class View:
    """What the brain needs from a request, whatever the protocol."""

    user_prompt: str
    offered: list[str]
    final_mode: bool
    calls_made: list[tuple[str, dict[str, Any]]]
    tool_results: list[str]
    can_spawn: bool = False


def scope_files(view: View) -> list[str]:
    match = _SCOPE_RE.search(view.user_prompt)
    if not match:
        return []
    scope = json.loads(match.group(1))
    files = scope.get("files") or scope.get("documents") or []
    return list(files) + ([scope["document"]] if scope.get("document") else [])


def brain_next_calls(view: View) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls the brain makes next; [] means it is ready to answer."""
    if view.final_mode:
        return []
    made = [(name, json.dumps(args, sort_keys=True)) for name, args in view.calls_made]
    wanted: list[tuple[str, dict[str, Any]]] = []
    for text in view.tool_results:  # gullible: obey what the data says
        for name in _CALL_RE.findall(text):
            if name not in ("read_file", "list_dir", "search"):
                wanted.append((name, {}))
        for path in _READ_RE.findall(text):
            wanted.append(("read_file", {"path": path}))
    if "read_file" in view.offered:
        wanted += [("read_file", {"path": path}) for path in scope_files(view)]
    fresh = [(n, a) for n, a in wanted if (n, json.dumps(a, sort_keys=True)) not in made]
    return fresh[:2]


def report_inputs(view: View) -> tuple[str, dict[str, Any]] | None:
    """(step, inputs) when the request is one of the report's own agents, else None."""
    step, inputs = _STEP_RE.search(view.user_prompt), _INPUTS_RE.search(view.user_prompt)
    if not step:
        return None
    try:
        data = json.loads(inputs.group(1)) if inputs else {}
    except json.JSONDecodeError:  # cut at the input limit
        data = {}
    return step.group(1), data


def report_answer(step: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """A narrative that names the items it was given by id, or one verdict per serious item:
    upheld when a quote backs it, challenged otherwise."""
    if step == "judge":  # an evaluation's judge: full marks when the reference's words appear
        reference = str(inputs.get("reference") or "").lower().split()
        answer = str(inputs.get("response") or "").lower()
        hit = bool(reference) and all(word.strip(".,") in answer for word in reference[:2])
        return {"score": 5 if hit else 2, "rationale": f"reference {'found' if hit else 'missing'}"}
    if step in ("judge-pair", "judge-rubric"):  # a judged ensemble's judge
        return ensemble_judge_answer(step, inputs)
    if step == "verify":  # the depth tier: confirmed when the quote is in the lines it was sent
        return verify_answer(inputs)
    clusters = inputs.get("clusters") or []
    if step == "report":
        top = [str(line).split(" | ") for line in clusters[:3]]
        lines = [f"The review kept {inputs.get('total_clusters', len(clusters))} item(s)."]
        lines += [f"- {p[0]}: {p[2]} ({p[1]}, {p[3]})" for p in top if len(p) >= 4]
        return {"summary": "\n".join(lines), "themes": sorted(inputs.get("by_lens") or {})[:6]}
    verdicts = [
        {
            "cluster": c["id"],
            "verdict": "upheld" if c.get("quote") else "challenged",
            "evidence_present": bool(c.get("quote")),
            "severity_justified": c.get("agents", 1) > 1 or c["severity"] != "critical",
            "duplicate_of": None,
            "reason": f"quote {'present' if c.get('quote') else 'missing'} at {c['where']}",
        }
        for c in clusters
    ]
    return {"summary": f"Judged {len(verdicts)} serious item(s).", "verdicts": verdicts}


def verify_answer(inputs: dict[str, Any]) -> dict[str, Any]:
    verdicts = []
    for item in inputs.get("items") or []:
        quoted = bool(item.get("evidence")) and item["evidence"] in str(item.get("context"))
        verdicts.append(
            {
                "item": item.get("id"),
                "verdict": "confirmed" if quoted else "rejected",
                "severity": item.get("severity"),
                "confidence": 0.9,
                "reason": "the quote is in the code" if quoted else "the code does not say that",
            }
        )
    return {"summary": f"Checked {len(verdicts)} item(s).", "verdicts": verdicts}


def ensemble_judge_answer(step: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The candidate with more quoted findings wins (a tie when equal), whatever the order; a
    rubric score grows with them."""

    def quoted(candidate: dict[str, Any]) -> int:
        return sum(bool(f.get("evidence")) for f in candidate.get("findings") or [])

    if step == "judge-pair":
        a, b = quoted(inputs.get("A") or {}), quoted(inputs.get("B") or {})
        winner = "A" if a > b else "B" if b > a else "tie"
        return {"winner": winner, "reason": f"A quotes {a} finding(s), B quotes {b}"}
    n = quoted(inputs.get("candidate") or {})
    return {"score": min(5, 1 + n // 2), "reason": f"{n} quoted finding(s)"}


def brain_answer(view: View) -> dict[str, Any]:
    if (report := report_inputs(view)) is not None:
        return report_answer(*report)
    findings = []
    for text in view.tool_results:
        header = text.splitlines()[0] if text else ""
        path_match = re.match(r"File '([^']+)'", header)
        path = path_match.group(1) if path_match else ""
        for line in text.splitlines()[1:]:
            match = _LINE_RE.match(line)
            if not match:
                continue
            number, content = int(match.group(1)), match.group(2)
            for marker in MARKERS:
                if marker.lower() in content.lower():
                    findings.append(
                        {
                            "title": f"{marker} at {path}:{number}",
                            "detail": content.strip()[:200],
                            "severity": MARKER_SEVERITY.get(marker, "medium"),
                            "confidence": 0.7,
                            "path": path,
                            "line_start": number,
                            "line_end": number,
                            "evidence": content.strip()[:200],
                            "rule": f"marker-{marker.strip('(')}",
                        }
                    )
                    break
    refused = sum("refused" in text for text in view.tool_results)
    summary = f"Read {len(view.tool_results)} tool results; {len(findings)} findings"
    answer: dict[str, Any] = {
        "summary": summary + (f"; {refused} refused" if refused else ""),
        "findings": findings[:20],
    }
    if view.can_spawn:
        answer["spawn"] = []
    return answer


# The provider fault mix of the fault suite (issue 14): the share of requests given each fault;
# the rest are answered normally. "garbage" is a 200 whose body is not JSON.
FAULT_MIX = {"429": 0.30, "500": 0.05, "503": 0.05, "garbage": 0.05, "hang": 0.05}

MALFORMED = '{"summary": "oops", "findings": [ {"title": '
INVALID = {"summary": 5, "findings": [{"title": "", "severity": "catastrophic"}]}


class FakeServer:
    """Base class; subclasses implement ``respond(handler, recorded, behaviour)``."""

    def __init__(
        self, *, api_key: str = "", retry_after: str = "7", slow_seconds: float = 3.0
    ) -> None:
        self.api_key = api_key
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.plan: list[str] = []
        self.default = "brain"
        # A behaviour for every request of one of the report's agents ("report", "critique").
        self.by_step: dict[str, str] = {}
        self.prose = False  # answer the tool phase in prose (forces the final-answer turn)
        # The first this many conversations offered ``spawn_subagent`` call it once (a run of
        # depth 2 on demand); 0 (the default) never spawns. See ``spawn_calls``.
        self.spawns = 0
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        # Fault-suite options (see the module docstring); all off by default.
        self.fault_mix: dict[str, float] = {}
        self._fault_rng = random.Random(0)
        self.hang_seconds = 30.0
        self.latency_seconds = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.intervals: list[tuple[float, float, str]] = []  # (start, end, behaviour)
        self.behaviours: list[str] = []  # every behaviour drawn, in order
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                server._handle(self)

            def do_GET(self) -> None:
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def use_fault_mix(self, mix: dict[str, float], seed: int = 0) -> None:
        """Draw each request's behaviour from ``mix`` (behaviour -> share, the rest ``default``)
        with a generator seeded by ``seed``: the same sequence of faults on every run."""
        if sum(mix.values()) > 1:
            raise ValueError("the shares of a fault mix add up to more than 1")
        with self.lock:
            self.fault_mix = dict(mix)
            self._fault_rng = random.Random(seed)

    def _next_behaviour(self) -> str:
        with self.lock:
            if self.plan:
                behaviour = self.plan.pop(0)
            elif self.fault_mix:
                draw, behaviour = self._fault_rng.random(), self.default
                for name, share in self.fault_mix.items():
                    if draw < share:
                        behaviour = name
                        break
                    draw -= share
            else:
                behaviour = self.default
            self.behaviours.append(behaviour)
            return behaviour

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length).decode("utf-8", "replace") if length else ""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        recorded = Recorded(
            handler.command,
            handler.path,
            {k.lower(): v for k, v in handler.headers.items()},
            body,
            raw,
            time.time(),
        )
        with self.lock:
            self.requests.append(recorded)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        started = time.monotonic()
        step = _RAW_STEP_RE.search(raw) if self.by_step else None
        if step and step.group(1) in self.by_step:
            behaviour = drawn = self.by_step[step.group(1)]
        else:
            behaviour = drawn = self._next_behaviour()
        try:
            if behaviour in ("slow", "hang"):
                time.sleep(self.slow_seconds if behaviour == "slow" else self.hang_seconds)
                behaviour = "brain"
            if self.latency_seconds:
                time.sleep(self.latency_seconds)
        finally:
            # Metered up to the answer, not past it: once the client has its answer it may start
            # the next request, which must not overlap this one in the record.
            with self.lock:
                self.in_flight -= 1
                self.intervals.append((started, time.monotonic(), drawn))
        # The client may have given up already (the timeout test).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.respond(handler, recorded, behaviour)

    def respond(self, handler: BaseHTTPRequestHandler, recorded: Recorded, behaviour: str) -> None:
        raise NotImplementedError

    def spawn_calls(self, view: View) -> list[tuple[str, dict[str, Any]]]:
        """A ``spawn_subagent`` call on a conversation's first turn while ``spawns`` allows:
        a sub-agent on the same files, its scope marked as a part so that its task key differs
        from its parent's (the engine refuses a duplicate)."""
        files = scope_files(view)
        if view.calls_made or view.final_mode or "spawn_subagent" not in view.offered or not files:
            return []
        with self.lock:
            if self.spawns <= 0:
                return []
            self.spawns -= 1
        scope = {"files": files, "part": "second look"}
        return [("spawn_subagent", {"scope": scope, "why": "a second look at this chunk"})]

    @staticmethod
    def send(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def model_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def everything_recorded(self) -> str:
        """Every request's path and body as one string (for secret scans)."""
        return "\n".join(f"{r.path}\n{r.raw}" for r in self.requests)


def usage_for(request_body: Any, output: Any) -> tuple[int, int]:
    """Deterministic token counts (about 4 chars a token), as a real server would report."""
    return (len(json.dumps(request_body)) // 4 + 10, len(json.dumps(output)) // 4 + 5)


def masked(key: str) -> str:
    return f"{key[:5]}****{key[-4:]}" if len(key) > 12 else "****"


__all__ = [
    "FAULT_MIX",
    "INVALID",
    "MALFORMED",
    "FakeServer",
    "Recorded",
    "View",
    "brain_answer",
    "brain_next_calls",
    "field",
    "masked",
    "usage_for",
]
