"""The agent tree at any size: groups from the planner's structure, counts that roll up, a first
render bounded by what is open, children fetched on demand, search that reveals an agent."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from runs.models import Task
from runs.pages.run import tree as agent_tree
from tests.runs.factories import make_audit, make_run, make_task

pytestmark = pytest.mark.django_db

ROW = re.compile(r'class="node-row')


def _agents(html: str) -> set[int]:
    return {int(n) for n in re.findall(r'id="task-(\d+)"', html)}


def test_groups_nest_by_folder_and_single_folder_chains_fold(operator: User) -> None:
    run = make_run(operator)
    make_audit(run, ["src/app/api", "src/app/db", "docs"], files=2)
    top = make_task(run, group="", scope_label="setup.py", cost_usd=Decimal("0.5"))
    child = make_task(run, parent=top, group="", scope_label="setup.py#L1-40")
    tree = agent_tree.build(Task.objects.filter(run=run).order_by("id"))

    root = tree.root
    assert [tree.nodes[k].label for k in root.children if k.startswith("g:")] == ["docs", "src/app"]
    app = tree.nodes["g:src/app"]  # "src" and "src/app" hold nothing else: one node
    assert [tree.nodes[k].label for k in app.children] == ["api", "db"]
    assert len(tree.nodes["g:src/app/api"].children) == 4  # 2 files x 2 lenses
    assert tree.nodes[f"t:{child.pk}"].parent == f"t:{top.pk}"
    assert root.counts.total == 14 and app.counts.total == 8
    assert root.counts.cost == sum(t.cost_usd for t in Task.objects.filter(run=run))
    assert tree.ancestors(f"t:{child.pk}") == [f"t:{top.pk}", "g:"]


def test_a_small_run_opens_whole_and_a_big_one_renders_its_top_levels(
    viewer_client: Client, operator: User
) -> None:
    small = make_run(operator)
    tasks = make_audit(small, ["a", "b"], files=3)
    html = viewer_client.get(reverse("runs:detail", args=[small.pk])).content.decode()
    assert _agents(html) == {t.pk for t in tasks}

    big = make_run(operator)
    make_audit(big, [f"pkg{i}/mod" for i in range(40)], files=25)  # 2,000 agents
    html = viewer_client.get(reverse("runs:detail", args=[big.pk])).content.decode()
    assert len(ROW.findall(html)) <= agent_tree.INITIAL_ROWS + 1
    assert "2000 agents" in html  # the planner's row counts the whole run
    assert "Planned 2000 agents at once" in html
    assert 'hx-trigger="toggle once"' in html  # closed groups load when opened


def test_opening_a_group_fetches_its_children_a_page_at_a_time(
    viewer_client: Client, operator: User
) -> None:
    run = make_run(operator)
    tasks = make_audit(run, ["big"], files=75, lenses=("security", "reliability", "style"))
    url = reverse("runs:tree", args=[run.pk])
    first = viewer_client.get(url, {"node": "g:big"})
    assert first.status_code == 200
    html = first.content.decode()
    assert _agents(html) == {t.pk for t in tasks[: agent_tree.PAGE]}
    assert f"offset={agent_tree.PAGE}" in html and f"{225 - agent_tree.PAGE} not shown" in html
    rest = viewer_client.get(
        url, {"node": "g:big", "offset": str(agent_tree.PAGE)}
    ).content.decode()
    assert _agents(rest) == {t.pk for t in tasks[agent_tree.PAGE : 2 * agent_tree.PAGE]}
    assert viewer_client.get(url, {"node": "g:nope"}).status_code == 404
    assert viewer_client.get(url, {"node": "g:big", "offset": "x"}).status_code == 200  # first page


def test_the_tree_endpoints_check_who_may_see_the_run(
    make_user: type, operator: User, client: Client
) -> None:
    run = make_run(operator)
    make_audit(run, ["a"], files=1)
    outsider = make_user(None)
    other = Client()
    other.force_login(outsider)
    for name in ("runs:tree", "runs:tree_search"):
        url = reverse(name, args=[run.pk])
        assert other.get(url, {"node": "g:", "q": "a"}).status_code == 404
        assert client.get(url).status_code == 302  # anonymous: to the sign-in page


def test_search_reveals_an_agent_deep_in_a_big_tree(viewer_client: Client, operator: User) -> None:
    run = make_run(operator)
    tasks = make_audit(run, [f"pkg{i}/mod" for i in range(40)], files=25)
    deep = tasks[1_733]
    spawned = make_task(run, parent=deep, group=deep.group, scope_label="needle.py#L10-90")
    found = viewer_client.get(reverse("runs:tree_search", args=[run.pk]), {"q": "needle"})
    html = found.content.decode()
    assert "<b>1</b> agent match" in html
    link = f"?reveal={spawned.pk}#node-{spawned.pk}"
    assert link in html
    page = viewer_client.get(reverse("runs:detail", args=[run.pk]), {"reveal": spawned.pk})
    html = page.content.decode()
    assert f'class="node revealed" id="node-{spawned.pk}"' in html
    assert deep.pk in _agents(html)
    # Only the path to it is opened: the page stays small.
    assert len(ROW.findall(html)) < agent_tree.INITIAL_ROWS + 2 * agent_tree.PAGE


def test_search_by_status_counts_every_match_and_lists_a_bounded_few(
    viewer_client: Client, operator: User
) -> None:
    run = make_run(operator)
    tasks = make_audit(run, ["a"], files=60)
    Task.objects.filter(pk__in=[t.pk for t in tasks[:70]]).update(status=Task.Status.FAILED)
    html = viewer_client.get(
        reverse("runs:tree_search", args=[run.pk]), {"status": "failed", "q": ""}
    ).content.decode()
    assert "<b>70</b> agents match" in html and "the first 50 are listed" in html
    assert len(re.findall(r"\?reveal=", html)) == agent_tree.SEARCH_LIMIT
    bad = viewer_client.get(reverse("runs:tree_search", args=[run.pk]), {"status": "<x>"})
    assert bad.status_code == 200 and "&lt;x&gt;" not in bad.content.decode()


def test_a_failed_run_without_agents_says_why(viewer_client: Client, operator: User) -> None:
    run = make_run(operator, status="failed", status_reason="This target needs 729 agents")
    html = viewer_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "No agents were created: This target needs 729 agents" in html
    assert "the planner is splitting" not in html


def test_light_rows_are_tasks_whose_other_columns_load_on_demand(operator: User) -> None:
    from runs.pages.run.dashboard import load_tasks

    run = make_run(operator)
    make_task(run, summary="a long summary", cost_usd=Decimal("0.125"))
    (task,) = load_tasks(run)
    assert isinstance(task, Task) and task.pk == task.id and not task._state.adding
    assert task.cost_usd == Decimal("0.125") and task.get_status_display() == "Succeeded"
    assert "summary" in task.get_deferred_fields()
    assert task.summary == "a long summary"  # deferred: fetched when read


def test_an_agent_caught_up_with_its_new_children_is_appended_open_with_them(
    operator: User,
) -> None:
    run = make_run(operator)
    parent = make_task(run)
    child = make_task(run, parent=parent, depth=1)
    grandchild = make_task(run, parent=child, depth=2)
    tree = agent_tree.build(list(Task.objects.filter(run=run)))
    keys = {f"t:{t.pk}" for t in (child, grandchild)}
    # Both new in the same catch-up: the child comes open, with the grandchild inside.
    items = agent_tree.walk_one(tree, f"t:{child.pk}", keys)
    assert [(i.kind, i.node.key, i.open, i.loaded) for i in items] == [
        ("open", f"t:{child.pk}", True, True),
        ("open", f"t:{grandchild.pk}", False, True),
        ("close", f"t:{grandchild.pk}", False, False),
        ("close", f"t:{child.pk}", False, False),
    ]
    # Alone (its child seen before), it is closed and its children are fetched when opened.
    alone = agent_tree.walk_one(tree, f"t:{child.pk}", {f"t:{child.pk}"})
    assert [(i.kind, i.loaded) for i in alone] == [("open", False), ("close", False)]


def test_without_javascript_a_closed_groups_link_opens_that_group(
    viewer_client: Client, operator: User
) -> None:
    run = make_run(operator)
    tasks = make_audit(run, [f"pkg{i}/mod" for i in range(40)], files=25)
    inside = {t.pk for t in tasks if t.group == "pkg7/mod"}
    url = reverse("runs:detail", args=[run.pk])
    html = viewer_client.get(url).content.decode()
    assert not inside & _agents(html)  # closed at first: too big to open them all
    dom = agent_tree.dom_id("g:pkg7/mod")
    link = re.search(r'<a href="([^"]+)">Show the 50 items inside</a>', html.split(dom, 1)[1])
    assert link, "the closed group offers a plain link"
    html = viewer_client.get(link.group(1).replace("&amp;", "&")).content.decode()
    assert inside <= _agents(html)  # the group itself is open, not only the path to it
    group = html.split(f'id="node-{dom}"', 1)[1][:200]
    assert "<details open" in group and "Show the 50 items inside" not in group
    assert len(ROW.findall(html)) < agent_tree.INITIAL_ROWS + agent_tree.PAGE


def test_without_javascript_an_agents_link_opens_its_spawned_children(
    viewer_client: Client, operator: User
) -> None:
    run = make_run(operator)
    tasks = make_audit(run, [f"pkg{i}/mod" for i in range(40)], files=25)
    parent = tasks[300]
    kids = [make_task(run, parent=parent, group=parent.group) for _ in range(3)]
    html = viewer_client.get(
        reverse("runs:detail", args=[run.pk]), {"open": f"t:{parent.pk}"}
    ).content.decode()
    assert {k.pk for k in kids} <= _agents(html)
