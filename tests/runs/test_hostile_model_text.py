"""Model-written text is inert everywhere, for every playbook and every report type.

The hostile-model corpus (``tests/data/hostile_model_text.json``: Markdown links, autolinks,
reference links, images, raw ``<a>``/``<img>``/``<script>``/``<iframe>``, ``javascript:`` and
``data:`` URLs, entities that decode to tags, …) is what every kind of model agent writes: the
workers' findings, the synthesis (a report agent's summary, or document synthesis's own synthesis
agent), the critic's verdicts (and a critic that failed with the corpus in its error). It is stored
as the worker stores it, the run is aggregated by the real ``aggregate``, and every surface is read
back: the run page, the report page, the findings and agent pages, the first websocket frame, and
the Markdown, JSON and SARIF exports. None may carry a live link, image, script or raw HTML.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client
from markdown_it import MarkdownIt

from agents.aggregation.stages import run_chain
from agents.docs_analysis import synthesize
from agents.docs_analysis.types import DocumentSummary, KeySentence
from agents.playbooks import PLAYBOOKS, get_playbook
from runs.actions.report import aggregate
from runs.engine.report_inputs import report_step_inputs
from runs.models import Report, Run, Task
from runs.rendering import render_markdown
from tests.agents.test_aggregation import facts
from tests.runs.factories import make_finding, make_run, make_task
from tests.runs.test_consumers import connected, receive_all

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

CORPUS: list[dict[str, str]] = json.loads(
    (Path(__file__).parents[1] / "data" / "hostile_model_text.json").read_text()
)
HOSTILE = "\n\n".join(entry["text"] for entry in CORPUS)
# What only the corpus contains: a page or export that has it in an attribute, or outside a code
# span in Markdown, made the model's link (or script URL) live.
MARKERS = re.compile(r"evil\.example|\bjavascript:|\bvbscript:|\bdata:[a-z]", re.IGNORECASE)
# Elements the harness never renders: one in a page means the model's markup got through.
NEVER = {"img", "iframe", "frame", "object", "embed", "base", "style", "video", "audio", "image"}
NEVER |= {"source", "picture", "applet", "math"}
URL_ATTRS = {"href", "src", "action", "formaction", "data", "poster", "srcset", "xlink:href"}
URL_ATTRS |= {"background", "cite", "ping", "hx-get", "hx-post", "ws-connect", "hx-put"}
# The only absolute URLs the harness itself writes: exports link back to the server (the test
# client's host), and a finding's CWE badge links to MITRE.
OWN_HOSTS = {"testserver", "cwe.mitre.org"}


class _Live(HTMLParser):
    """Everything in a page that a browser would fetch, run or follow, and did not come from the
    harness's own templates."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        described = f"<{tag} {' '.join(f'{k}={v!r}' for k, v in attrs)}>"
        values = dict(attrs)
        if tag in NEVER:
            self.problems.append(f"element {described}")
        if tag == "script" and not (values.get("src") or "").startswith("/static/"):
            self.problems.append(f"inline or foreign script {described}")
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.problems.append(f"event handler {described}")
            if MARKERS.search(value):
                self.problems.append(f"hostile URL in an attribute {described}")
            if name in URL_ATTRS and _foreign(value):
                self.problems.append(f"foreign URL {described}")

    handle_startendtag = handle_starttag


def _foreign(url: str) -> bool:
    url = url.strip()
    if re.match(r"^([a-z][a-z0-9+.-]*:|//|\\\\)", url, re.IGNORECASE) is None:
        return False  # relative: the harness's own
    parts = urlsplit(url)
    return parts.scheme not in ("http", "https") or parts.hostname not in OWN_HOSTS


def live_in_html(html: str) -> list[str]:
    parser = _Live()
    parser.feed(html)
    parser.close()
    return parser.problems


def live_in_markdown(text: str) -> list[str]:
    """What a Markdown viewer could make live: the HTML a permissive renderer (raw HTML on) makes
    of it, and any hostile URL left outside a code span or code block, where a viewer that
    links bare URLs (GitHub's autolinks, linkify) would make it a link."""
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    problems = live_in_html(md.render(text))
    for token in md.parse(text):
        for child in token.children or []:
            if child.type in ("text", "html_inline") and MARKERS.search(child.content):
                problems.append(f"hostile URL outside code: {child.content!r}")
        bare = token.type == "html_block" or (token.type == "inline" and not token.children)
        if bare and MARKERS.search(token.content):
            problems.append(f"hostile URL outside code: {token.content!r}")
    return problems


def live_in_sarif(sarif: dict[str, Any]) -> list[str]:
    """SARIF viewers render ``[text](target)`` in a plain-text message as a link (SARIF 2.1.0
    §3.11.6): every bracket of model text must be escaped. Artifact URIs stay relative to the
    source root (no scheme, no host)."""
    problems: list[str] = []

    def messages(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("text", "markdown") and isinstance(value, str):
                    yield value
                elif key != "properties":  # property bags are data, never rendered as messages
                    yield from messages(value)
        elif isinstance(node, list):
            for item in node:
                yield from messages(item)

    for text in messages(sarif):
        bare = re.sub(r"\\[\\\[\]]", "", text)
        if "[" in bare or "]" in bare:
            problems.append(f"unescaped bracket in a SARIF message: {text[:120]!r}")
    for run in sarif["runs"]:
        for result in run["results"]:
            for location in result["locations"]:
                uri = location["physicalLocation"]["artifactLocation"]["uri"]
                if re.match(r"^([a-z][a-z0-9+.-]*:|/|\\)", uri, re.IGNORECASE):
                    problems.append(f"artifact URI not relative to the source root: {uri!r}")
    return problems


def _critic_output(critic: Task, sent: dict[str, Any]) -> dict[str, Any]:
    ids = list(sent["ids"])
    verdicts: list[dict[str, Any]] = [
        {
            "cluster": cid,
            "verdict": "challenged",
            "evidence_present": False,
            "severity_justified": False,
            "duplicate_of": ids[0] if n else "",
            "reason": CORPUS[n % len(CORPUS)]["text"],
        }
        for n, cid in enumerate(ids)
    ]
    verdicts += [  # what the critic may not say, quoted back in the report's notes
        {"cluster": "<img src=x>[a](//evil.example)", "verdict": "upheld"},
        {"cluster": ids[0] if ids else "C1", "verdict": "[v](https://evil.example/verdict)"},
    ]
    return {"data": {"sent": sent, "verdicts": verdicts}, "model": "gpt-4o-mini"}


def _hostile_findings(run: Run, worker: Task) -> None:
    for n, entry in enumerate(CORPUS):
        make_finding(
            run,
            worker,
            title=entry["text"][:200],
            detail=f"{entry['name']}: {entry['text']}",
            evidence=entry["text"],
            # A model may name any path; every third one is its own hostile text.
            path=entry["text"][:400] if n % 3 == 0 else f"app/file_{n}.py",
            line_start=n + 1,
            severity="high",
            confidence=0.9,
            fingerprint=f"hostile-{worker.pk}-{n}",
        )


def hostile_run(playbook: str, critic_fails: bool) -> Run:
    """A run of ``playbook`` whose every model-written text is the corpus, aggregated."""
    run = make_run(
        status=Run.Status.AGGREGATING,
        playbook=playbook,
        config=get_playbook(playbook).to_config(),
        target_label="docs",
    )
    # Two agents report each: an ensemble keeps only what a quorum of its voters found.
    workers = [make_task(run, lens="security"), make_task(run, lens="security")]
    for worker in workers:
        _hostile_findings(run, worker)
    # The planner names a failed agent's scope after the target's paths: untrusted too.
    make_task(run, status=Task.Status.FAILED, scope_label=CORPUS[0]["text"], error=HOSTILE[:500])
    if get_playbook(playbook).decomposition == "hierarchical":
        # Document synthesis: its own synthesis agent writes the narrative.
        make_task(
            run,
            step="synthesize",
            role="synthesizer",
            lens="summary",
            summary=HOSTILE,
            output={"data": {"themes": [e["text"] for e in CORPUS]}, "model": "gpt-4o-mini"},
        )
    else:
        make_task(
            run,
            step="report",
            role="synthesizer",
            lens="synthesis",
            summary=HOSTILE,
            output={
                "data": {"sent": {}, "themes": [e["text"] for e in CORPUS]},
                "model": "gpt-4o-mini",
            },
        )
    critic = make_task(run, step="critique", role="critic", lens="critic", summary=HOSTILE)
    if critic_fails:
        Task.objects.filter(pk=critic.pk).update(status=Task.Status.FAILED, error=HOSTILE[:2000])
    else:
        _, sent = report_step_inputs(critic)
        Task.objects.filter(pk=critic.pk).update(output=_critic_output(critic, sent))
    aggregate(run.pk)
    run.refresh_from_db()
    assert run.status == Run.Status.AWAITING_REVIEW, (run.status, run.status_reason)
    return run


@pytest.fixture(params=[(name, False) for name in PLAYBOOKS] + [("codebase-audit", True)])
def run_and_report(request: pytest.FixtureRequest) -> tuple[Run, Report]:
    playbook, critic_fails = request.param
    run = hostile_run(playbook, critic_fails)
    return run, run.reports.get()


def test_the_report_carries_every_kind_of_model_text(run_and_report: tuple[Run, Report]) -> None:
    """The corpus did reach the report (a test that found nothing would prove nothing)."""
    run, report = run_and_report
    html = report.html
    assert "Summary" in html or "Synthesis" in html
    assert "alert(1)" in html and "evil.example/md-link" in html  # shown as text
    if run.tasks.filter(step="critique", status=Task.Status.SUCCEEDED).exists():
        assert any(
            "critic (model): challenged" in (c.get("verdict") or "") for c in report.clusters
        )
        assert any("evil.example" in (c.get("verdict") or "") for c in report.clusters)
    else:
        assert any("critic" in note and "evil.example" in note for note in report.notes)


def test_report_html_as_stored_is_inert(run_and_report: tuple[Run, Report]) -> None:
    _, report = run_and_report
    assert live_in_html(report.html) == []
    assert live_in_markdown(report.source_text) == []  # its Markdown source too
    assert "<a " not in report.html


def test_pages_are_inert(run_and_report: tuple[Run, Report], viewer: User) -> None:
    run, report = run_and_report
    client = Client()
    client.force_login(viewer)
    pages = [
        f"/runs/{run.pk}/",
        f"/runs/{run.pk}/reports/{report.version}/",
        f"/runs/{run.pk}/findings/",
        f"/runs/{run.pk}/events/",
        *(f"/runs/{run.pk}/agents/{pk}/" for pk in run.tasks.values_list("pk", flat=True)),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert live_in_html(response.content.decode()) == [], url


@pytest.mark.anyio
async def test_the_websocket_frame_is_inert(
    run_and_report: tuple[Run, Report], viewer: User
) -> None:
    run, _ = run_and_report
    comm = await connected(f"/ws/runs/{run.pk}/", viewer)
    try:
        frames = await receive_all(comm)
    finally:
        await comm.disconnect()
    html = "".join(frames)
    assert 'id="run-report"' in html and "evil.example/md-link" in html
    assert live_in_html(html) == []


def test_exports_are_inert(run_and_report: tuple[Run, Report], viewer: User) -> None:
    run, report = run_and_report
    client = Client()
    client.force_login(viewer)
    base = f"/runs/{run.pk}/reports/{report.version}/export"
    markdown = client.get(f"{base}.md").content.decode()
    assert "evil.example/md-link" in markdown  # kept, as text
    assert live_in_markdown(markdown) == []
    body = client.get(f"{base}.json").content.decode()
    # JSON carries model text as data, exact once parsed; the file itself holds no markup.
    assert not set("<>&") & set(body)
    doc = json.loads(body)
    titles = {m["title"] for c in doc["clusters"] for m in c["members"]}
    assert {entry["text"][:200] for entry in CORPUS} <= titles
    summary = doc["report"]["params"].get("model_summary")
    assert summary is None or summary["text"].startswith(HOSTILE)
    sarif = json.loads(client.get(f"{base}.sarif").content.decode())
    assert sarif["runs"][0]["results"]
    assert live_in_sarif(sarif) == []


def test_the_offline_synthesis_of_hostile_documents_is_inert() -> None:
    """The heuristic's own synthesis quotes each document's title and first sentence (target
    text: a prompt injection can put a link there) and its path."""
    summaries = [
        DocumentSummary(
            path=f"docs/{entry['text'][:60]}.md",
            title=entry["text"],
            word_count=50,
            sentence_count=3,
            keywords=[(entry["text"][:40], 3), (f"term{n}", 2)],
            key_sentences=[KeySentence(line=2, text=entry["text"])],
            reading_ease=60.0,
        )
        for n, entry in enumerate(CORPUS)
    ]
    text = synthesize(summaries).to_markdown()
    assert live_in_markdown(text)  # the analyzer's own Markdown quotes them as they are
    draft = run_chain([], facts(synthesis_texts=[text]), ["synthesis"])
    assert "**Corpus synthesis**" in draft.markdown  # its headings kept, as bold lines
    assert live_in_markdown(draft.markdown) == []
    html = render_markdown(draft.markdown)
    assert live_in_html(html) == [] and "evil.example/md-link" in html


def test_the_checks_see_a_live_link() -> None:
    """The checks themselves: raw model text is caught on every surface."""
    assert live_in_html(MarkdownIt("commonmark", {"html": True}).render(HOSTILE))
    assert live_in_markdown("See https://evil.example/x")
    assert live_in_markdown("[a](https://evil.example/x)")
    result: dict[str, Any] = {
        "message": {"text": "[a](https://evil.example)"},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": "//evil.example/x"}}}],
    }
    sarif = {"runs": [{"results": [result]}]}
    assert len(live_in_sarif(sarif)) == 2


def test_a_version_stored_under_the_old_rules_shows_no_link(viewer: User) -> None:
    """Links were once allowed in a report's HTML: pages and frames clean it again as shown."""
    run = make_run(status=Run.Status.AWAITING_REVIEW)
    Report.objects.create(
        run=run,
        chain=["synthesis"],
        source_text="[fix](https://evil.example/stored)",
        html='<p><a href="https://evil.example/stored" rel="noopener">fix</a> '
        '<img src="https://evil.example/stored.png"></p>',
    )
    client = Client()
    client.force_login(viewer)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "<p>fix" in page  # the link's text kept, the link gone
    assert live_in_html(page) == []
