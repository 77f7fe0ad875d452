"""What a freeze leaves out on purpose: files nobody reviews, by default, and a launch's own
globs, in .gitignore syntax (matched by ``pathspec``, as git would).

Each file left out costs no agent: an audit of ``django/contrib`` planned 1,650 agents, 1,194 of
them reading nothing but translation catalogues. A file left out is still listed in the
manifest's ``skipped`` with the reason, so a reviewer can see what was not read and why.

Later patterns win, as in a .gitignore: the launch's globs come after the defaults, so
``!*.po`` keeps the translation catalogues while every other default still applies. A folder
that matches is left out whole (git does not look inside an ignored folder either).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pathspec import GitIgnoreSpec

from agents.snapshot.base import SnapshotError

# Never read, whatever a launch says: a VCS folder is history, not the code, and may hold
# credentials. Dependency and cache folders are default excludes instead, so a launch can
# choose to read them.
SKIP_DIRS: dict[str, str] = {
    ".git": "vcs folder",
    ".hg": "vcs folder",
    ".svn": "vcs folder",
}
# (glob, why nobody reviews it). Globs without a slash match at any depth; a trailing slash
# matches folders only.
DEFAULT_EXCLUDES: tuple[tuple[str, str], ...] = (
    ("*.po", "translation catalogue"),
    ("*.pot", "translation catalogue"),
    ("*.mo", "translation catalogue"),
    ("package-lock.json", "lock file"),
    ("npm-shrinkwrap.json", "lock file"),
    ("pnpm-lock.yaml", "lock file"),
    ("*.lock", "lock file"),  # poetry, yarn, Pipfile, uv, Cargo, Gemfile, composer
    ("node_modules/", "dependency folder"),
    ("bower_components/", "dependency folder"),
    ("vendor/", "dependency folder"),
    (".venv/", "dependency folder"),
    (".tox/", "dependency folder"),
    ("dist/", "build output"),
    ("build/", "build output"),
    ("__pycache__/", "bytecode cache"),
    ("*.min.js", "minified file"),
    ("*.min.css", "minified file"),
    # An evaluation's answer key (samples/<target>.expected.json lists every planted problem):
    # an auditor that read it would "find" them from the key, not the code. It sits beside its
    # target, but a launch of the folder above (samples/ itself is offered) would take it in.
    ("*.expected.json", "answer key"),
)
MAX_PATTERNS = 100
MAX_PATTERN_CHARS = 300
_SEPARATORS = re.compile(r"[\n,]")


def exclude_patterns(value: object) -> list[str]:
    """The globs of an ``exclude`` option: a list of globs, or text with one glob per line or
    comma-separated. Blank ones are dropped; a glob that is malformed or can match nothing
    raises ``SnapshotError`` with a message fit for the user."""
    if value is None:
        return []
    if isinstance(value, str):
        items: list[object] = list(_SEPARATORS.split(value))
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise SnapshotError("Excludes must be globs: a list, or text with one glob per line.")
    if not all(isinstance(item, str) for item in items):
        raise SnapshotError("Excludes must be globs: a list, or text with one glob per line.")
    patterns = [str(item).strip() for item in items if str(item).strip()]
    if len(patterns) > MAX_PATTERNS:
        raise SnapshotError(f"Give at most {MAX_PATTERNS} globs to exclude.")
    for pattern in patterns:
        if len(pattern) > MAX_PATTERN_CHARS:
            raise SnapshotError(f"An exclude glob is longer than {MAX_PATTERN_CHARS} characters.")
        try:
            (compiled,) = GitIgnoreSpec.from_lines([pattern]).patterns
        except ValueError:  # pathspec's GitIgnorePatternError
            raise SnapshotError(f"Exclude {pattern!r} is not a valid glob.") from None
        if compiled.include is None:  # "/" or a "#" comment: nothing to match
            raise SnapshotError(f"Exclude {pattern!r} matches nothing.")
    return patterns


class Excludes:
    """The defaults (unless ``defaults`` is False) and then ``patterns``; ``reason`` says why
    a path is left out. Folders are asked about with a trailing slash."""

    def __init__(self, patterns: Iterable[str] = (), *, defaults: bool = True) -> None:
        self.patterns = exclude_patterns(list(patterns))
        self.defaults = defaults
        rules = [*(DEFAULT_EXCLUDES if defaults else ()), *((p, "") for p in self.patterns)]
        self._spec = GitIgnoreSpec.from_lines([glob for glob, _ in rules])
        self._reasons = [
            f"excluded by default: {why}" if why else f"excluded by --exclude {glob!r}"
            for glob, why in rules
        ]

    def reason(self, path: str) -> str | None:
        """Why ``path`` (relative, POSIX; a folder ends with "/") is left out, or None."""
        result = self._spec.check_file(path)
        if not result.include or result.index is None:
            return None
        return self._reasons[result.index]

    def folder_reason(self, folder: str) -> str | None:
        """Why the folder at ``folder`` (relative, POSIX, no trailing slash) is not entered: a
        VCS folder whatever the launch says, else what ``reason`` says; None to enter it."""
        return SKIP_DIRS.get(folder.rsplit("/", 1)[-1]) or self.reason(f"{folder}/")


NO_EXCLUDES = Excludes(defaults=False)
