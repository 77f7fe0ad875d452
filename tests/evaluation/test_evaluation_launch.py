"""Launching an evaluation: judges planned from the dataset's content, bad input refused with
nothing created (no rows, no snapshot)."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from agents.planning import plan
from agents.playbooks import PLAYBOOKS
from agents.snapshot import freeze_directory
from runs.actions import LaunchError, launch_run
from runs.models import Event, Run, Task

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_enqueue() -> Iterator[mock.MagicMock]:
    with mock.patch("runs.actions.enqueue.send") as enqueue:
        yield enqueue


@pytest.fixture
def root(tmp_path: Path, settings: Any) -> Path:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    settings.DATA_DIR = tmp_path / "data"
    return tmp_path.resolve()


def _target(root: Path, files: dict[str, str], name: str = "eval") -> Path:
    target = root / name
    target.mkdir()
    for path, text in files.items():
        (target / path).write_text(text)
    return target


def _lines(*items: dict[str, Any]) -> str:
    return "".join(json.dumps(i) + "\n" for i in items)


ITEM = {"id": "q1", "prompt": "Capital of France?", "response": "Paris.", "reference": "Paris"}


def _stored(root: Path) -> list[Path]:
    store = Path(settings.DATA_DIR) / "snapshots" / "manifests"
    return list(store.glob("*.json")) if store.exists() else []


def test_one_judge_per_item_and_dimension_grouped_by_dimension(root: Path) -> None:
    target = _target(
        root, {"dataset.jsonl": _lines(ITEM, {**ITEM, "id": "q2"}), "notes.md": "# notes\n"}
    )
    run = launch_run(
        user=None,
        playbook="evaluation",
        target_path=str(target),
        options={"dimensions": "correctness,clarity", "judges": 2},
    )
    manifest = freeze_directory(target, [root], None).to_dict()
    book = PLAYBOOKS["evaluation"].with_overrides(options=run.config["options"])
    specs = plan(book, manifest, lambda p: (target / p).read_text())
    assert len(specs) == 2 * 2 * 2
    assert {s.group for s in specs} == {"correctness", "clarity"}
    assert {(s.scope["item"], s.scope["dimension"], s.scope["judge"]) for s in specs} == {
        (i, d, j) for i in ("q1", "q2") for d in ("correctness", "clarity") for j in (0, 1)
    }
    assert all(s.step == "judge" and s.role == "judge" for s in specs)
    # the same content plans the same keys
    again = plan(book, manifest, lambda p: (target / p).read_text())
    assert [s.key for s in specs] == [s.key for s in again]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"notes.md": "# no dataset\n"}, "No dataset.jsonl in the target"),
        ({"dataset.jsonl": '{"id": 1, "prompt": "p"}\n'}, "line 1: response: Field required"),
        ({"dataset.jsonl": "{oops\n"}, "line 1 is not valid JSON"),
        (
            {"dataset.jsonl": _lines(ITEM), "rubric.yaml": "dimensions:\n  - name: tone\n"},
            "give it a description and a check",
        ),
        ({"a.jsonl": _lines(ITEM)}, "needs both a.jsonl and b.jsonl"),
    ],
)
def test_bad_input_is_refused_with_nothing_created(
    root: Path, files: dict[str, str], message: str
) -> None:
    target = _target(root, files)
    with pytest.raises(LaunchError, match=message) as info:
        launch_run(user=None, playbook="evaluation", target_path=str(target))
    assert info.value.field == "target"
    assert (Run.objects.count(), Task.objects.count(), Event.objects.count()) == (0, 0, 0)
    assert _stored(root) == []  # refused before the snapshot was committed


def test_an_uploaded_archive_is_validated_too(root: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("eval/dataset.jsonl", '{"id": 1}\n')
    upload = SimpleUploadedFile("eval.zip", buffer.getvalue(), content_type="application/zip")
    with pytest.raises(LaunchError, match=r"eval/dataset\.jsonl line 1: prompt: Field required"):
        launch_run(user=None, playbook="evaluation", archive=upload)
    assert not Run.objects.exists()


def test_the_judges_option_is_bounded(root: Path) -> None:
    target = _target(root, {"dataset.jsonl": _lines(ITEM)})
    with pytest.raises(LaunchError, match="judges must be a whole number from 1 to 5"):
        launch_run(user=None, playbook="evaluation", target_path=str(target), options={"judges": 9})


def test_the_sample_evaluation_launches(root: Path) -> None:
    shutil.copytree(SAMPLES / "evaluation", root / "evaluation")
    run = launch_run(user=None, playbook="evaluation", target_path=str(root / "evaluation"))
    assert run.status == Run.Status.PENDING
    assert run.config["options"]["judges"] == 1


def test_the_form_offers_and_launches_the_sample_evaluation(operator_client: Any) -> None:
    from django.urls import reverse

    sample = str((SAMPLES / "evaluation").resolve())
    page = operator_client.get(reverse("runs:launch")).content.decode()
    assert 'value="evaluation"' in page and "evaluation/" in page
    response = operator_client.post(
        reverse("runs:launch"),
        {
            "playbook": "evaluation",
            "target": sample,
            "provider": "heuristic",
            "max_concurrency": 8,
            "budget_usd": "5",
            "max_depth": 1,
            "aggregation": ["confidence", "synthesis", "critic"],
            "latency_ms": 0,
        },
    )
    run = Run.objects.get()
    assert response.status_code == 302, response.content.decode()[:2000]
    assert run.playbook == "evaluation" and run.target_label.endswith("evaluation")
