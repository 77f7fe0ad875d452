"""Check runs' traces as Arize Phoenix holds them, through Phoenix's own REST and GraphQL APIs.

    .venv/bin/python scripts/check_phoenix.py RUN [RUN ...] [--phoenix http://127.0.0.1:6006]
        [--project agent-harness] [--harness http://127.0.0.1:8000]

With ``--harness`` (and ``HARNESS_API_TOKEN``, a token with the ``read`` scope) each run's
totals come from the harness's API; without, from the run's root span (the harness's figures as
the trace states them). Prints one row per run and check, and exits 1 if any check fails:

- one trace: the run's spans are in one trace whose single root is ``invoke_workflow {playbook}
  #{run}`` (plus a ``resume`` trace per resumption and a ``review`` trace per decision), no
  orphans;
- kinds: every span has an OpenInference kind Phoenix draws (CHAIN, AGENT, LLM, TOOL; none
  unknown), the right one for its name;
- root input/output: the root carries the run's input (playbook, target, options) and output
  (status, findings); needs ``HARNESS_CAPTURE_CONTENT=true``;
- tokens, cost: Phoenix's own roll-up (the LLM spans' tokens and cost, summed over the run's
  traces) equals the run's totals, and the root's cost figures (attribute and message) agree;
  an offline run shows 0 model tokens and says it is offline;
- ends last: no span of the run's traces ends after the root (a cancelled run's late spend is
  inside it);
- reviews: each decision is a one-span trace in the run's Phoenix session (Phoenix keeps no span
  links; ``session.id`` is the run's ``gen_ai.conversation.id``);
- final state: the run's last root is an error only if the run ended in one.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import requests

KINDS = {"chat": "LLM", "invoke_agent": "AGENT", "execute_tool": "TOOL"}
ERROR_STATES = {"failed", "cancelled", "budget_exhausted"}
# A decision comes after the run's trace ended, in a review trace: the root still says
# awaiting_review for an approved or rejected run.
DECIDED = {"approved", "rejected"}
TIMEOUT_S = 30


@dataclass
class Traces:
    """A run's spans in Phoenix, by role: its first trace, resume traces, review traces."""

    run: int
    spans: list[dict[str, Any]]
    by_trace: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for span in self.spans:
            grouped[span["context"]["trace_id"]].append(span)
        self.by_trace = dict(grouped)

    def roots(self, prefix: str) -> list[dict[str, Any]]:
        return sorted(
            (
                s
                for s in self.spans
                if s["parent_id"] is None
                and s["name"].startswith(prefix)
                and s["name"].endswith(f" #{self.run}")
            ),
            key=lambda s: s["start_time"],
        )


def all_spans(phoenix: str, project: str) -> list[dict[str, Any]]:
    """Every span of the project (Phoenix's REST API pages by cursor)."""
    spans: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        answer = requests.get(
            f"{phoenix}/v1/projects/{project}/spans", params=params, timeout=TIMEOUT_S
        )
        answer.raise_for_status()
        body = answer.json()
        spans += body["data"]
        cursor = body.get("next_cursor")
        if not cursor:
            return spans


def rollup(phoenix: str, span_id: str) -> dict[str, Any]:
    """Phoenix's own figures for a root span: cumulative tokens and its trace's cost."""
    query = """query ($id: ID!) { node(id: $id) { ... on Span {
        cumulativeTokenCountPrompt cumulativeTokenCountCompletion
        trace { numSpans costSummary { total { cost } } } } } }"""
    answer = requests.post(
        f"{phoenix}/graphql",
        json={"query": query, "variables": {"id": span_id}},
        timeout=TIMEOUT_S,
    )
    answer.raise_for_status()
    body = answer.json()
    if body.get("errors"):
        raise SystemExit(f"Phoenix's GraphQL API refused the query: {body['errors']}")
    node: dict[str, Any] = body["data"]["node"]
    return node


def harness_totals(harness: str, run: int) -> dict[str, Any]:
    token = os.environ.get("HARNESS_API_TOKEN", "")
    if not token:
        raise SystemExit("--harness needs HARNESS_API_TOKEN (a token with the read scope).")
    answer = requests.get(
        f"{harness}/api/v1/runs/{run}/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT_S,
    )
    answer.raise_for_status()
    body = answer.json()
    return {
        "status": body["status"],
        "provider": body["provider"],
        "tokens_in": body["tokens"]["input"],
        "tokens_out": body["tokens"]["output"],
        "cost": float(body["cost_usd"]),
    }


def root_totals(root: dict[str, Any]) -> dict[str, Any]:
    attributes = root["attributes"]
    offline = bool(attributes.get("harness.offline"))
    return {
        "status": attributes.get("harness.status"),
        "provider": attributes.get("gen_ai.provider.name"),
        "tokens_in": attributes.get(
            "harness.nominal.input_tokens" if offline else "gen_ai.usage.input_tokens", 0
        ),
        "tokens_out": attributes.get(
            "harness.nominal.output_tokens" if offline else "gen_ai.usage.output_tokens", 0
        ),
        "cost": attributes.get("harness.cost_usd", 0.0),
    }


Row = tuple[str, bool | None, str]  # check, passed (None: does not apply), detail


def check_run(phoenix: str, traces: Traces, totals: dict[str, Any] | None) -> list[Row]:
    firsts = traces.roots("invoke_workflow ")
    if len(firsts) != 1:
        return [("one trace", False, f"{len(firsts)} roots named invoke_workflow … #{traces.run}")]
    first = firsts[0]
    resumes = traces.roots("resume ")
    reviews = traces.roots("review ")
    run_traces = [first, *resumes]  # the run's own work; reviews are apart
    last = run_traces[-1]
    totals = totals or root_totals(last)
    rows: list[Row] = []

    # One trace per run (and one per resumption, one per decision), each with one root.
    known = {r["context"]["trace_id"] for r in [*run_traces, *reviews]}
    stray = [s["name"] for s in traces.spans if s["context"]["trace_id"] not in known]
    problems = []
    for trace_id in known:
        spans = traces.by_trace[trace_id]
        ids = {s["context"]["span_id"] for s in spans}
        roots = [s for s in spans if s["parent_id"] is None]
        orphans = [s["name"] for s in spans if s["parent_id"] and s["parent_id"] not in ids]
        if len(roots) != 1 or orphans:
            problems.append(f"{trace_id[:8]}: {len(roots)} roots, orphans {orphans[:3]}")
    rows.append(
        (
            "one trace",
            not stray and not problems,
            f"{len(traces.by_trace[first['context']['trace_id']])} spans, {len(resumes)} resume "
            f"and {len(reviews)} review trace(s)"
            + (f"; outside them: {stray[:3]}" if stray else "")
            + (f"; {problems}" if problems else ""),
        )
    )

    # OpenInference kinds, as Phoenix stored them.
    wrong = [
        f"{s['name']}={s['span_kind']}"
        for s in traces.spans
        if s["span_kind"] != KINDS.get(s["name"].split(" ")[0], "CHAIN")
    ]
    seen = sorted({s["span_kind"] for s in traces.spans})
    rows.append(
        ("kinds", not wrong, f"{', '.join(seen)}" + (f"; wrong: {wrong[:4]}" if wrong else ""))
    )

    # The root's name and the run's input and output.
    playbook = first["attributes"].get("gen_ai.workflow.name", "?")
    named = first["name"] == f"invoke_workflow {playbook} #{traces.run}"
    rows.append(("root named", named, first["name"]))
    given = json.loads(last["attributes"].get("input.value") or "{}")
    outcome = json.loads(last["attributes"].get("output.value") or "{}")
    has_io = {"playbook", "target", "options"} <= set(given) and {"status", "findings"} <= set(
        outcome
    )
    rows.append(
        (
            "root input/output",
            has_io
            and (
                outcome.get("status") == totals["status"]
                or (totals["status"] in DECIDED and outcome.get("status") == "awaiting_review")
            ),
            f"target {given.get('target')!r}, status {outcome.get('status')}, "
            f"{outcome.get('findings')} findings"
            if has_io
            else "no input.value/output.value (is HARNESS_CAPTURE_CONTENT=true?)",
        )
    )

    # Phoenix's roll-up against the run's totals.
    figures = [rollup(phoenix, r["id"]) for r in run_traces]
    tokens_in = sum(int(f["cumulativeTokenCountPrompt"] or 0) for f in figures)
    tokens_out = sum(int(f["cumulativeTokenCountCompletion"] or 0) for f in figures)
    cost = sum(float(f["trace"]["costSummary"]["total"]["cost"] or 0) for f in figures)
    offline = bool(last["attributes"].get("harness.offline"))
    if offline:
        model_keys = [
            k for r in run_traces for k in r["attributes"] if k.startswith("gen_ai.usage")
        ]
        rows.append(
            (
                "tokens",
                tokens_in == tokens_out == 0 and not model_keys,
                f"offline analyzer: Phoenix 0 model tokens; nominal {totals['tokens_in']:,} in / "
                f"{totals['tokens_out']:,} out under harness.nominal.*",
            )
        )
        rows.append(("cost", cost == 0, f"Phoenix ${cost:.6f}; nominal ${totals['cost']:.6f}"))
    else:
        rows.append(
            (
                "tokens",
                (tokens_in, tokens_out) == (totals["tokens_in"], totals["tokens_out"]),
                f"Phoenix {tokens_in:,} in / {tokens_out:,} out; run "
                f"{totals['tokens_in']:,} / {totals['tokens_out']:,}",
            )
        )
        stated = last["attributes"].get("gen_ai.usage.cost")
        message = last.get("status_message") or ""
        in_message = message.split("$", 1)[1].split(" ", 1)[0] if "$" in message else None
        # Phoenix prices each LLM span itself from its own model table; the harness rounds each
        # call to the micro-dollar: the sums may differ by half a micro-dollar a call.
        calls = sum(
            1
            for r in run_traces
            for s in traces.by_trace[r["context"]["trace_id"]]
            if s["span_kind"] == "LLM"
        )
        agree = abs(cost - totals["cost"]) <= 1e-6 * (calls + 1) and stated == last[
            "attributes"
        ].get("harness.cost_usd")
        if in_message is not None:
            agree = agree and abs(float(in_message) - totals["cost"]) < 1e-6
        rows.append(
            (
                "cost",
                agree,
                f"Phoenix ${cost:.6f}; run ${totals['cost']:.6f}; root attribute ${stated}"
                + (f"; root message ${in_message}" if in_message is not None else ""),
            )
        )

    # The root ends last: agents still in a call when the run stopped are inside its trace.
    late = []
    for root in run_traces:
        for span in traces.by_trace[root["context"]["trace_id"]]:
            if span["end_time"] > root["end_time"]:
                late.append(span["name"])
    rows.append(
        ("ends last", not late, f"after the root: {late[:3]}" if late else "root ends last")
    )

    # Decisions: short traces of their own in the run's session.
    session = first["attributes"].get("session.id")
    if reviews:
        apart = [
            r["name"]
            for r in reviews
            if r["attributes"].get("session.id") != session
            or len(traces.by_trace[r["context"]["trace_id"]]) != 1
        ]
        rows.append(
            (
                "reviews",
                not apart,
                f"{', '.join(r['name'] for r in reviews)} in session {str(session)[:8]}",
            )
        )
    else:
        rows.append(("reviews", None, "no decision yet"))

    # The final state: green when the run ended well, whatever came before.
    error = last["status_code"] == "ERROR"
    history = " then ".join("red" if r["status_code"] == "ERROR" else "green" for r in run_traces)
    rows.append(
        (
            "final state",
            error == (totals["status"] in ERROR_STATES),
            f"{totals['status']}: {history}",
        )
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=int, help="run numbers")
    parser.add_argument("--phoenix", default="http://127.0.0.1:6006")
    parser.add_argument("--project", default="agent-harness")
    parser.add_argument("--harness", default="", help="the harness's URL, for the runs' totals")
    args = parser.parse_args()
    spans = all_spans(args.phoenix.rstrip("/"), args.project)
    failed = 0
    print(f"{'run':>5}  {'check':<18} {'result':<6} detail")
    for run in args.runs:
        mine = [s for s in spans if s["attributes"].get("harness.run_id") == run]
        totals = harness_totals(args.harness.rstrip("/"), run) if args.harness else None
        for check, passed, detail in check_run(args.phoenix.rstrip("/"), Traces(run, mine), totals):
            result = "n/a" if passed is None else "pass" if passed else "FAIL"
            failed += passed is False
            print(f"{run:>5}  {check:<18} {result:<6} {detail}")
    print(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
