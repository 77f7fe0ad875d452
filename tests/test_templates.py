"""The templates as files: each one loads, its lines stay readable, every ``page#partial`` the
code renders exists, and no fragment file is left behind that nothing includes.

Live fragments are partials of the page that shows them (``{% partialdef %}``); the views and
consumers render them alone as ``"runs/detail.html#counters"``. A name that drifts (a renamed
partial, a deleted file) fails only when that code path runs, so it is checked here, for all of
them at once.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.template import TemplateDoesNotExist, TemplateSyntaxError
from django.template.loader import get_template

MAX_LINE = 160
TEMPLATES = Path(settings.BASE_DIR) / "templates"
CODE = [Path(settings.BASE_DIR) / room for room in ("runs", "harness_site", "agents")]

_PARTIALDEF = re.compile(r"{%\s*partialdef\s+([\w-]+)")
_INCLUDE = re.compile(r"""{%\s*include\s+["']([^"']+)["']""")
# A template name in Python code: "runs/detail.html", or "runs/detail.html#counters".
_NAME_IN_CODE = re.compile(r"""["']((?:[\w-]+/)*[\w-]+\.html)(?:#([\w-]+))?["']""")


def _template_files() -> list[Path]:
    return sorted(TEMPLATES.rglob("*.html"))


def _name(path: Path) -> str:
    return path.relative_to(TEMPLATES).as_posix()


def _code_files() -> list[Path]:
    return sorted(p for room in CODE for p in room.rglob("*.py") if "migrations" not in p.parts)


def _names_in_code() -> set[tuple[str, str | None, str]]:
    """(template, partial or None, where) for every template name a Python module mentions."""
    found = set()
    for path in _code_files():
        for match in _NAME_IN_CODE.finditer(path.read_text()):
            found.add((match[1], match[2], str(path.relative_to(settings.BASE_DIR))))
    return found


def test_the_checks_see_the_templates_and_the_code() -> None:
    names = {_name(p) for p in _template_files()}
    assert {"base.html", "runs/detail.html", "runs/list.html", "runs/inbox.html"} <= names
    partials = {(t, p) for t, p, _ in _names_in_code() if p}
    # The run page's panels, the live list's row and the inbox's item are rendered alone.
    assert {
        ("runs/detail.html", "counters"),
        ("runs/list.html", "run-row"),
        ("runs/inbox.html", "inbox-item"),
    } <= partials


@pytest.mark.parametrize("path", _template_files(), ids=_name)
def test_every_template_and_each_of_its_partials_loads(path: Path) -> None:
    name = _name(path)
    get_template(name)  # a syntax error (an unclosed tag, a tag split over lines) raises
    for partial in _PARTIALDEF.findall(path.read_text()):
        get_template(f"{name}#{partial}")


@pytest.mark.parametrize("path", _template_files(), ids=_name)
def test_no_template_line_is_over_160_characters(path: Path) -> None:
    long = [
        f"{_name(path)}:{number}: {len(line)} characters"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if len(line) > MAX_LINE
    ]
    assert not long, "\n".join(long)


def test_every_template_and_partial_the_code_names_exists() -> None:
    missing = []
    for template, partial, where in sorted(_names_in_code(), key=str):
        name = f"{template}#{partial}" if partial else template
        try:
            get_template(name)
        except (TemplateDoesNotExist, TemplateSyntaxError) as exc:
            missing.append(f"{where}: {name} ({exc.__class__.__name__})")
    assert not missing, "\n".join(missing)


def test_every_fragment_file_is_included_somewhere() -> None:
    """A ``_name.html`` file is a fragment several pages include; one nothing includes (or
    renders) any more is dead and goes."""
    included = {name for p in _template_files() for name in _INCLUDE.findall(p.read_text())}
    rendered = {template for template, _, _ in _names_in_code()}
    unused = [
        _name(p)
        for p in _template_files()
        if p.name.startswith("_") and _name(p) not in included | rendered
    ]
    assert not unused, f"fragment files nothing includes: {unused}"


def test_every_included_template_exists() -> None:
    missing = []
    for path in _template_files():
        for name in _INCLUDE.findall(path.read_text()):
            try:
                get_template(name)
            except TemplateDoesNotExist:
                missing.append(f"{_name(path)} includes {name}")
    assert not missing, "\n".join(missing)
