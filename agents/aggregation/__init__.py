"""Aggregation chain: turn a run's findings into one report.

Stage 1 is deterministic (dedup → quorum → confidence); stage 2 writes and checks the report
(synthesis → critic). With the offline analyzer stage 2 is template-based and says so; with an
LLM provider configured for the ``synthesizer`` role, synthesis asks that model.
"""

from agents.aggregation.records import Cluster
from agents.aggregation.stages import AGGREGATION_STEPS, ReportDraft, run_chain

__all__ = ["AGGREGATION_STEPS", "Cluster", "ReportDraft", "run_chain"]
