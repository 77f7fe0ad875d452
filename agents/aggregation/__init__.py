"""Aggregation chain: turn a run's findings into one report.

Stage 1 is deterministic (dedup → quorum → confidence); stage 2 writes and checks the report
(synthesis → critic). With the offline analyzer stage 2 is template-based and says so; with an
LLM provider configured for the ``synthesizer`` role, synthesis asks that model.

The chain is ``agents.aggregation.stages`` (``run_chain``, ``ReportDraft``, ``AGGREGATION_STEPS``).
This package imports nothing itself: the offline analyzer's judge reads only
``agents.aggregation.evidence``, and importing the whole chain from here would pull in the
provider catalog, which imports that analyzer (a cycle).
"""
