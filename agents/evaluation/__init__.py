"""Evaluation harnesses: many judge agents score a candidate model's outputs.

Modules: ``dataset`` (the JSONL items, one or two datasets for an A/B comparison), ``rubric``
(the dimensions judged: built-in ones and a target's own ``rubric.yaml``/``rubric.json``),
``inputs`` (finding and validating both in a snapshot), ``judge`` (the judge's strict answer and
its prompts for language-model providers), ``offline`` (the heuristic provider's judge:
measurable checks, not a language model), ``scorecard`` (means with bootstrap intervals,
inter-judge agreement, worst items, A/B win rates with a paired test).

Contracts: a judge scores one item on one dimension on the 1-5 scale (or abstains with
``score = null`` when the dimension cannot be judged for that item, e.g. correctness with no
reference); its answer lands in ``AgentOutput.data`` as ``{"score", "rationale", ...}``. Scores
are keyed by (variant, item id, dimension, judge) so that a human's scores can be added beside
the judges' as one more judge.
"""
