"""The launch's bounds and options: what a launch may set, each value checked before anything is
written. The launch form, its estimate and ``manage.py launch_run`` all check with these (through
``runs.actions.launch``), so a bound is stated once.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings

from agents import adaptive
from agents.aggregation.similarity import EMBEDDER_OPTIONS
from agents.aggregation.stages import TUNABLES
from agents.budget_scopes import DEFAULT_SPLIT, split_problem
from agents.latency import MAX_SIGMA
from agents.playbooks import FORM_OPTIONS, Playbook
from agents.snapshot import SnapshotError, exclude_patterns
from agents.tiers import check_tier_options


def launch_bounds() -> dict[str, tuple[int, int]]:
    """(lowest, highest) accepted for each whole-number launch setting, read at each launch (a
    deployment's settings, or ``bench`` lifting them for its own process)."""
    return {
        "max_concurrency": (1, settings.HARNESS_MAX_CONCURRENCY),
        "max_depth": (0, 10),
        "latency_ms": (0, 600_000),
        "budget_tokens": (1, 10**12),
    }


BUDGET_USD_STEP = Decimal("0.000001")  # budgets are kept in micro-dollars
BUDGET_USD_MAX = Decimal(100_000)


# Playbook options a launch may set, (lowest, highest) for the whole numbers. An option applies
# to the playbooks that declare it in ``Playbook.options``; ``max_agents`` (a limit every
# playbook has) is bounded by settings.HARNESS_MAX_AGENTS, read at each launch.
def option_bounds() -> dict[str, tuple[int, int]]:
    return {
        "k": (1, settings.HARNESS_MAX_VOTERS),  # voters of an ensemble
        "chunk_files": (1, 100),  # files per chunk of a codebase audit
    }


# Options every playbook takes besides its own ``Playbook.options``: the launch applies them
# (the agent cap; the globs left out of the snapshot, and whether the default ones are).
LAUNCH_OPTIONS = ("max_agents", "exclude", "default_excludes", "budget_split")
# Names kept for features still to come: refused, so that a script setting them learns now that
# they do nothing, rather than being silently ignored (none at the moment).
RESERVED_OPTIONS: dict[str, str] = {}
OPTION_LABELS = {
    "k": "Voters (K)",
    "chunk_files": "Files per chunk",
    "document": "Document",
    "max_agents": "Max agents",
    "exclude": "Exclude",
    "default_excludes": "Default excludes",
}
DOCUMENT_MAX_CHARS = 500


class LaunchError(ValueError):
    """A launch was refused. ``field`` names the form field at fault (None: the whole form)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def bounded_int(value: Any, field: str, low: int, high: int) -> int:
    label = OPTION_LABELS.get(field) or field.replace("_", " ").capitalize()
    # bool is an int to Python (True agents is a mistake, not 1); int(2.7) would truncate.
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise LaunchError(f"{label} must be a whole number.", field)
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise LaunchError(f"{label} must be a whole number.", field) from None
    if not low <= number <= high:
        raise LaunchError(f"{label} must be between {low} and {high}.", field)
    return number


def latency_sigma_option(value: Any) -> float:
    try:
        sigma = float(value or 0)
    except (TypeError, ValueError):
        raise LaunchError("Latency sigma must be a number.", "latency_sigma") from None
    if not 0 <= sigma <= MAX_SIGMA:
        raise LaunchError(f"Latency sigma must be between 0 and {MAX_SIGMA:g}.", "latency_sigma")
    return sigma


def offered_options(book: Playbook) -> list[str]:
    """The options the launch form offers for ``book``, besides max agents (every playbook)."""
    return [n for n in FORM_OPTIONS if n in book.options]


def playbook_options(book: Playbook) -> list[str]:
    """Every option a launch may set for ``book``, sorted: the playbook's own (its
    ``Playbook.options``), the launch's (``LAUNCH_OPTIONS``) and what the aggregation chain
    reads (its ``TUNABLES`` and the embedder's options). Read from those declarations at each
    call, so a new one is accepted wherever it is declared."""
    return sorted({*book.options, *LAUNCH_OPTIONS, *TUNABLES, *EMBEDDER_OPTIONS})


def check_option_names(book: Playbook, options: dict[str, Any] | None) -> None:
    """Refuse, on the ``options`` field, a name nothing reads: an option set and silently
    ignored looks applied when it is not (a typo, another playbook's option, a reserved one)."""
    allowed = playbook_options(book)
    for name in options or {}:
        if name in RESERVED_OPTIONS:
            raise LaunchError(
                f"The option {name!r} is not available yet: it is reserved for "
                f"{RESERVED_OPTIONS[name]}, a later feature. Launch without it.",
                "options",
            )
        if name not in allowed:
            raise LaunchError(
                f"Unknown option {name!r} for {book.name}. Its options: {', '.join(allowed)}.",
                "options",
            )


def check_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """``options`` with the bounded ones checked and made whole numbers; the first one out of
    bounds raises LaunchError on its own field. Names are ``check_option_names``'s business:
    the launch form checks one option at a time with this."""
    checked = dict(options or {})
    for name, (low, high) in option_bounds().items():
        if name in checked:
            checked[name] = bounded_int(checked[name], name, low, high)
    if "max_agents" in checked:
        checked["max_agents"] = bounded_int(
            checked["max_agents"], "max_agents", 1, settings.HARNESS_MAX_AGENTS
        )
    if "document" in checked:
        document = checked["document"]
        if not isinstance(document, str) or len(document) > DOCUMENT_MAX_CHARS:
            raise LaunchError("Document must be a path inside the target, or *.", "document")
        checked["document"] = document.strip()
    if "exclude" in checked:
        try:
            checked["exclude"] = exclude_patterns(checked["exclude"])
        except SnapshotError as exc:
            raise LaunchError(str(exc), "exclude") from None
    if "adaptive" in checked:
        if (flag := adaptive.parse_flag(checked["adaptive"])) is None:
            raise LaunchError("Adaptive fan-out must be true or false.", "adaptive")
        checked["adaptive"] = flag
    checked = check_tier_options(checked, LaunchError)  # refused on the option's own field
    if not isinstance(checked.get("default_excludes", True), bool):
        raise LaunchError("Default excludes must be true or false.", "default_excludes")
    if problem := split_problem(checked.get("budget_split", DEFAULT_SPLIT)):
        raise LaunchError(problem, "budget_split")
    return checked


def parse_budget_usd(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise LaunchError("Budget must be an amount in USD, like 2.50.", "budget_usd") from None
    if not amount.is_finite():
        raise LaunchError("Budget must be an amount in USD, like 2.50.", "budget_usd")
    # Rounded before the check: a budget that rounds to $0 is no budget.
    if amount <= BUDGET_USD_MAX:
        amount = amount.quantize(BUDGET_USD_STEP)
    if amount <= 0 or amount > BUDGET_USD_MAX:
        raise LaunchError(
            f"Budget must be at least ${BUDGET_USD_STEP} and at most ${BUDGET_USD_MAX:,}.",
            "budget_usd",
        )
    return amount
