"""The offline provider analyses a file's text through a lens once per worker process: the
agents that read the same text (an ensemble's voters) share that analysis; another lens, another
text or a text too big to keep is analysed again."""

from __future__ import annotations

import pytest

from agents.analysis import Analysis, analyze_file
from agents.providers import heuristic

SOURCE = "import os\n\n\ndef handler(expr):\n    return eval(expr)\n"


def test_the_same_text_through_the_same_lens_is_analysed_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    heuristic._cached_analysis.cache_clear()
    analysed: list[tuple[str, str]] = []
    real = analyze_file

    def counting(path: str, text: str, lens: str) -> Analysis:
        analysed.append((path, lens))
        return real(path, text, lens)

    monkeypatch.setattr(heuristic, "analyze_file", counting)
    first = heuristic._analysis("app.py", SOURCE, "security")
    second = heuristic._analysis("app.py", SOURCE, "security")
    assert second == first and any(f.rule for f in first.findings)  # eval is found
    assert analysed == [("app.py", "security")]

    heuristic._analysis("app.py", SOURCE, "reliability")
    heuristic._analysis("app.py", SOURCE + "\nx = 1\n", "security")
    heuristic._analysis("other.py", SOURCE, "security")
    assert len(analysed) == 4

    big = SOURCE + "#" * heuristic.CACHED_TEXT_CHARS
    heuristic._analysis("big.py", big, "security")
    heuristic._analysis("big.py", big, "security")
    assert len(analysed) == 6
