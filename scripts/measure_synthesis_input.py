"""How much smaller the synthesis agent's input is than the raw findings it replaces.

    .venv/bin/python scripts/measure_synthesis_input.py [--target DIR] [--agents-per-file K]

Runs the offline analyzer over every Python file of the target through the three code lenses
(each file and lens as one agent's findings; ``--agents-per-file 3`` repeats them as three
agents would, like an ensemble), puts the findings through the report's deterministic steps
(dedup, quorum, confidence) and prints, with the same estimator for both: the tokens of the raw
findings as a synthesis agent would read them, and of the condensed clusters it does read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.aggregation.model_steps import (  # noqa: E402
    condense,
    critic_input,
    raw_findings_payload,
    tokens_estimate,
)
from agents.aggregation.records import FindingRow, reported  # noqa: E402
from agents.aggregation.stages import RunFacts, ranked, run_chain  # noqa: E402
from agents.analysis import analyze_code  # noqa: E402
from agents.playbooks import CODE_LENSES  # noqa: E402


def findings(target: Path, copies: int) -> list[FindingRow]:
    rows: list[FindingRow] = []
    task = 0
    for path in sorted(target.rglob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        rel = path.relative_to(target).as_posix()
        for lens in CODE_LENSES:
            for _ in range(copies):
                task += 1
                for f in analyze_code(rel, text, lens):
                    rows.append(FindingRow(len(rows) + 1, task, lens, **reported(f)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default=str(ROOT / "samples" / "vulnerable_app"))
    parser.add_argument("--agents-per-file", type=int, default=1)
    args = parser.parse_args()
    target = Path(args.target).resolve()
    rows = findings(target, args.agents_per_file)
    facts = RunFacts(
        run_id=0,
        playbook="codebase-audit",
        playbook_title="Codebase audit",
        target=target.name,
        status="aggregating",
        provider="openai",
        is_llm=True,
        agents={},
        cost_usd="0",
        budget_usd=None,
        unpriced_calls=0,
        tokens={},
        skipped_files=[],
        failed_scopes=[],
        skipped_scopes=[],
        options={},
    )
    draft = run_chain(rows, facts, ["dedup", "quorum", "confidence"])
    kept = ranked(draft.clusters)
    raw = tokens_estimate(raw_findings_payload(rows))
    synthesis = tokens_estimate(condense(kept))
    critic = tokens_estimate(critic_input(kept, ""))
    print(
        json.dumps(
            {
                "target": str(target),
                "raw_findings": len(rows),
                "clusters_kept": len(kept),
                "raw_findings_tokens": raw,
                "synthesis_input_tokens": synthesis,
                "reduction": round(raw / synthesis, 1) if synthesis else None,
                "critic_input_tokens": critic,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
