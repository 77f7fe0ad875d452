"""The run's agent tree as the page shows it, at any size.

The planner (the run's orchestrator) is the root. Under it come the decomposition's own groups
(``Task.group``: folders, documents, voters), '/'-separated paths nested as folders, then the
planned agents of each group and, under an agent, the children it spawned. A chain of folders
with nothing else in them is shown as one node ("src/app/api"), as a file browser would.

Every node has a key: ``g:<path>`` for a group (``g:`` is the root) and ``t:<id>`` for an agent.
The page renders only the open part of the tree; a closed node's children are fetched when it is
opened (``runs.views.tree``), a page of ``PAGE`` at a time, so a 10,000-agent run costs the page
what its open nodes cost. Built from the light task rows of ``runs.pages.run.dashboard.load_tasks``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from runs.eventlog.event_types import EventType
from runs.models import Event, Run, Task

ROOT = "g:"
# Children of one node rendered per request: 50 keeps a screenful and the first render of a
# 10,000-agent run (50 groups of its top level) well under 150 KB.
PAGE = 50
INITIAL_ROWS = 60  # the first render opens nodes breadth-first while it stays under this many rows
SEARCH_LIMIT = 50
DONE = Task.Status.SUCCEEDED
IN_FLIGHT = frozenset(Task.Status.in_flight())


@dataclass
class Counts:
    """Counts over a node and everything under it."""

    total: int = 0
    done: int = 0
    failed: int = 0
    active: int = 0
    cost: Decimal = field(default_factory=lambda: Decimal(0))
    tokens: int = 0

    def add(self, other: Counts) -> None:
        self.total += other.total
        self.done += other.done
        self.failed += other.failed
        self.active += other.active
        self.cost += other.cost
        self.tokens += other.tokens

    @classmethod
    def of(cls, task: Task) -> Counts:
        return cls(
            total=1,
            done=int(task.status == DONE),
            failed=int(task.status == Task.Status.FAILED),
            active=int(task.status in IN_FLIGHT),
            cost=task.cost_usd,
            tokens=task.tokens_in + task.tokens_out,
        )

    @property
    def rest(self) -> int:
        """Neither done, failed nor in flight: waiting, skipped or cancelled."""
        return self.total - self.done - self.failed - self.active

    @property
    def percent_done(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


@dataclass
class Node:
    key: str
    label: str
    parent: str | None
    counts: Counts = field(default_factory=Counts)
    children: list[str] = field(default_factory=list)  # groups first, then agents
    task: Task | None = None
    # A group's latest adaptive fan-out decision, in words (``runs.actions.adaptive``).
    note: str = ""
    # A planner group's slice of the budget (its ``Run.allowances`` entry), when it has one.
    allowance_usd: Decimal | None = None

    @property
    def is_group(self) -> bool:
        return self.task is None

    @property
    def dom(self) -> str:
        """The id suffix of this node's elements (``row-…``, ``node-…``, ``kids-…``)."""
        return dom_id(self.key)


def dom_id(key: str) -> str:
    if key.startswith("t:"):
        return key[2:]
    if key == ROOT:
        return "root"
    # Group paths come from the target's file names: hashed, never put in an id as they are.
    return "g" + hashlib.blake2b(key.encode(), digest_size=6).hexdigest()


@dataclass
class AgentTree:
    nodes: dict[str, Node]

    @property
    def root(self) -> Node:
        return self.nodes[ROOT]

    def ancestors(self, key: str) -> list[str]:
        """Keys from ``key``'s parent up to the root."""
        out: list[str] = []
        parent = self.nodes[key].parent if key in self.nodes else None
        while parent is not None:
            out.append(parent)
            parent = self.nodes[parent].parent
        return out

    def search(self, query: str = "", status: str = "") -> tuple[int, list[Task]]:
        """Agents matching a text and/or status filter: (how many, the first SEARCH_LIMIT)."""
        query = query.strip().lower()
        found: list[Task] = []
        total = 0
        for node in self.nodes.values():
            task = node.task
            if task is None or (status and task.status != status):
                continue
            if query:
                text = (
                    f"{task.pk} {task.step} {task.role} {task.lens} {task.scope_label} "
                    f"{task.group} {task.why} {task.model} {task.error}"
                ).lower()
                if query not in text:
                    continue
            total += 1
            if len(found) < SEARCH_LIMIT:
                found.append(task)
        found.sort(key=lambda t: t.pk)
        return total, found


def _folders(path: str) -> list[str]:
    """Every folder of a group path, outermost first: "a/b/c" → ["a", "a/b", "a/b/c"]."""
    parts = [p for p in path.split("/") if p]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def decision_notes(run: Run) -> dict[str, str]:
    """Each group's latest adaptive decision (none for a run that is not adaptive, without a
    query: a big run's live updates read this for every batch)."""
    notes: dict[str, str] = {}
    if not (run.config or {}).get("options", {}).get("adaptive"):
        return notes
    rows = Event.objects.filter(run_id=run.pk, type=EventType.ADAPTIVE_DECIDED).order_by("seq")
    for payload in rows.values_list("payload", flat=True):
        notes[str(payload.get("group", "")).strip("/")] = str(payload.get("reason", ""))
    return notes


def build_for(run: Run, tasks: Iterable[Task]) -> AgentTree:
    """The run's tree, with its groups' adaptive decisions and budget slices."""
    return build(tasks, decision_notes(run), run.allowances)


def build(
    tasks: Iterable[Task],
    notes: dict[str, str] | None = None,
    allowances: dict[str, Any] | None = None,
) -> AgentTree:
    """The tree of ``tasks``. ``notes``: words shown under a group (by group path):
    ``decision_notes``; ``allowances`` (``Run.allowances``) gives groups their slices."""
    tasks = list(tasks)
    # ``id``, not ``pk``: the property costs a lookup per call, and this runs for every agent.
    by_id = {t.id: t for t in tasks}
    # Groups that hold planned agents directly, and every folder above them.
    holding: dict[str, list[int]] = defaultdict(list)
    spawned: dict[int, list[int]] = defaultdict(list)
    for t in tasks:
        if t.parent_id is not None and t.parent_id in by_id:
            spawned[t.parent_id].append(t.id)
        else:  # a planned agent, or an orphan shown at its group rather than lost
            holding[t.group.strip("/")].append(t.id)
    sub_folders: dict[str, set[str]] = defaultdict(set)
    for path in holding:
        parent = ""
        for folder in _folders(path):
            sub_folders[parent].add(folder)
            parent = folder
    # A folder is a node when it holds agents or branches; a chain of single folders is one node.
    shown = {""} | set(holding) | {p for p, subs in sub_folders.items() if len(subs) > 1}
    nodes: dict[str, Node] = {ROOT: Node(ROOT, "", None)}
    for path in sorted(shown - {""}, key=lambda p: (p.count("/"), p)):
        above = next((f for f in reversed(_folders(path)[:-1]) if f in shown), "")
        label = path[len(above) + 1 :] if above else path
        nodes["g:" + path] = Node("g:" + path, label, "g:" + above)
    for key in sorted(nodes, key=lambda k: nodes[k].label.lower()):
        above_key = nodes[key].parent
        if above_key is not None:
            nodes[above_key].children.append(key)
    for path, ids in holding.items():
        kids = nodes["g:" + path].children
        for tid in ids:
            key = f"t:{tid}"
            nodes[key] = Node(key, "", "g:" + path, Counts.of(by_id[tid]), [], by_id[tid])
            kids.append(key)
    # Spawned children, in id order (a parent always has a smaller id than its children).
    for t in tasks:
        for child_id in spawned.get(t.id, ()):
            key = f"t:{child_id}"
            nodes[key] = Node(key, "", f"t:{t.id}", Counts.of(by_id[child_id]), [], by_id[child_id])
            nodes[f"t:{t.id}"].children.append(key)
    # Counts bottom-up: agents with children in reverse id order (children first), then groups.
    for t in reversed(tasks):
        if t.id in spawned:
            node = nodes[f"t:{t.id}"]
            for child in node.children:
                node.counts.add(nodes[child].counts)
    _sum_groups(nodes)
    for path, note in (notes or {}).items():
        if "g:" + path in nodes:
            nodes["g:" + path].note = note
    for group, slice_ in (allowances or {}).items():
        holder = nodes.get(f"g:{group.strip('/')}")
        if holder is not None and slice_.get("usd") is not None:
            holder.allowance_usd = Decimal(slice_["usd"])
    return AgentTree(nodes)


def _sum_groups(nodes: dict[str, Node]) -> None:
    order: list[str] = []
    stack = [ROOT]
    while stack:  # pre-order over groups; reversed, every group comes after its sub-groups
        key = stack.pop()
        order.append(key)
        stack.extend(c for c in nodes[key].children if c.startswith("g:"))
    for key in reversed(order):
        counts = Counts()
        for child in nodes[key].children:
            counts.add(nodes[child].counts)
        nodes[key].counts = counts


# ---------------------------------------------------------------------------------------------
# What to render


@dataclass
class Item:
    """One step of a flat walk: ``open``/``close`` a node, or a ``more`` button after a page."""

    kind: str
    node: Node
    open: bool = False  # the <details> starts open
    loaded: bool = False  # its children are rendered (else fetched when opened)
    offset: int = 0  # for ``more``: where the next page starts
    remaining: int = 0  # for ``more``: children not rendered yet


@dataclass
class View:
    """Which nodes are open, and how many children of each are rendered at least."""

    opened: set[str] = field(default_factory=set)
    at_least: dict[str, int] = field(default_factory=dict)
    revealed: str | None = None


def initial_view(
    tree: AgentTree, reveal: str | None = None, *, open_revealed: bool = False
) -> View:
    """Open nodes breadth-first from the root while the page stays under INITIAL_ROWS rows, so a
    small run shows whole and a big one shows its top levels; ``reveal`` (a node key) also opens
    every node above it and renders its siblings up to it, and with ``open_revealed`` the node
    itself (a closed node's link without JavaScript, ``?open=``: it must show what is inside)."""
    view = View(opened={ROOT})
    rows = min(len(tree.root.children), PAGE)
    queue = list(tree.root.children[:PAGE])
    while queue:
        key = queue.pop(0)
        kids = tree.nodes[key].children
        if not kids:
            continue
        shown = min(len(kids), PAGE)
        if rows + shown > INITIAL_ROWS:
            continue
        view.opened.add(key)
        rows += shown
        queue.extend(kids[:PAGE])
    if reveal in tree.nodes:
        view.revealed = reveal
        if open_revealed:
            view.opened.add(reveal)
        child = reveal
        for key in tree.ancestors(reveal):
            view.opened.add(key)
            index = tree.nodes[key].children.index(child)
            view.at_least[key] = max(view.at_least.get(key, 0), index + 1)
            child = key
    return view


def walk(tree: AgentTree, key: str, view: View, offset: int = 0) -> list[Item]:
    """The items rendering ``key``'s children from ``offset`` (a page, or more when the view
    asks to reach a revealed node), and recursively those of the open ones."""
    items: list[Item] = []
    _walk(tree, key, view, offset, items)
    return items


def _walk(tree: AgentTree, key: str, view: View, offset: int, items: list[Item]) -> None:
    kids = tree.nodes[key].children
    end = max(offset + PAGE, view.at_least.get(key, 0))
    for child_key in kids[offset:end]:
        child = tree.nodes[child_key]
        is_open = child_key in view.opened and bool(child.children)
        items.append(Item("open", child, open=is_open, loaded=is_open or not child.children))
        if is_open:
            _walk(tree, child_key, view, 0, items)
        items.append(Item("close", child))
    if len(kids) > end:
        node = tree.nodes[key]
        items.append(Item("more", node, offset=end, remaining=len(kids) - end))


def walk_one(tree: AgentTree, key: str, new: set[str] | None = None) -> list[Item]:
    """What is appended when an agent appears during the run: the node, closed, or open with
    its children when they are ``new`` too (a page that reconnects catches up on an agent and
    the children it spawned meanwhile at once; they are all shown, as they would have been
    one by one)."""
    node = tree.nodes[key]
    kids = [child for child in node.children if child in (new or set())]
    if not kids or len(kids) != len(node.children):
        return [Item("open", node, loaded=not node.children), Item("close", node)]
    items = [Item("open", node, open=True, loaded=True)]
    for child in kids:
        items += walk_one(tree, child, new)
    return [*items, Item("close", node)]
