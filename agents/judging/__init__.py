"""A judged ensemble (the ensemble playbook's ``mode = judge``): K voters produce candidate
answers, then judge agents pick the best one.

- ``plan``: the judges' tasks, each depending on the candidates it reads (pairwise: two judges
  per pair, one per order, so position bias cancels; rubric: one judge per candidate);
- ``answers``: the strict answer shapes, prompts and their validation for language-model judges;
- ``offline``: the offline judge (the heuristic provider: deterministic checks, not an LLM);
- ``tally``: the winner (Copeland over pairwise votes, or mean rubric score) and the judges'
  agreement.
"""
