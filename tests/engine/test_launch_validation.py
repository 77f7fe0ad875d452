"""launch_run validates everything before writing: a refused launch leaves no rows behind."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from runs.actions import LaunchError, launch_run
from runs.models import Event, Run, Task

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
APP = SAMPLES / "vulnerable_app"

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(operator: User) -> User:
    return operator


@pytest.fixture(autouse=True)
def _no_enqueue() -> Iterator[mock.MagicMock]:
    # Never reach Celery from these tests, even if a transaction commits.
    with mock.patch("runs.actions.enqueue.send") as enqueue:
        yield enqueue


@pytest.fixture
def nothing_written() -> Iterator[None]:
    before = (Run.objects.count(), Task.objects.count(), Event.objects.count())
    yield
    assert (Run.objects.count(), Task.objects.count(), Event.objects.count()) == before


def _zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _upload(data: bytes, name: str = "target.zip") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/zip")


def _refused(user: User, field: str, **kwargs: Any) -> LaunchError:
    kwargs.setdefault("playbook", "codebase-audit")
    if "archive" not in kwargs:
        kwargs.setdefault("target_path", str(APP))
    with pytest.raises(LaunchError) as info:
        launch_run(user=user, **kwargs)
    assert info.value.field == field, (info.value.field, str(info.value))
    assert str(info.value)
    return info.value


# --- form fields ------------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_written")
def test_unknown_playbook_is_refused(user: User) -> None:
    error = _refused(user, "playbook", playbook="no-such-playbook")
    assert "no-such-playbook" in str(error)


@pytest.mark.usefixtures("nothing_written")
def test_unknown_provider_is_refused(user: User) -> None:
    _refused(user, "provider", provider="no-such-provider")


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize("value", [0, 1000, "abc", -1, "", "1.5"])
def test_bad_max_concurrency_is_refused(user: User, value: Any) -> None:
    _refused(user, "max_concurrency", max_concurrency=value)


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize("value", ["-1", "0", "abc", "NaN", "Infinity", "1e9", -5])
def test_bad_budget_is_refused(user: User, value: Any) -> None:
    _refused(user, "budget_usd", budget_usd=value)


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize("value", [-1, 11, "deep"])
def test_bad_max_depth_is_refused(user: User, value: Any) -> None:
    _refused(user, "max_depth", max_depth=value)


@pytest.mark.usefixtures("nothing_written")
def test_unknown_aggregation_step_is_refused(user: User) -> None:
    _refused(user, "aggregation", aggregation=["dedup", "vibes"])


# --- target choice ----------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_written")
def test_both_directory_and_archive_is_refused(user: User) -> None:
    _refused(user, "target", target_path=str(APP), archive=_upload(_zip({"a.py": b"x = 1\n"})))


@pytest.mark.usefixtures("nothing_written")
def test_neither_directory_nor_archive_is_refused(user: User) -> None:
    with pytest.raises(LaunchError) as info:
        launch_run(user=user, playbook="codebase-audit")
    assert info.value.field == "target"


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize("path", ["/etc", "/", str(ROOT), str(ROOT / "runs")])
def test_directory_outside_target_roots_is_refused(user: User, path: str) -> None:
    error = _refused(user, "target", target_path=path)
    assert "outside the allowed folders" in str(error)


@pytest.mark.usefixtures("nothing_written")
def test_dotdot_escape_from_a_target_root_is_refused(user: User) -> None:
    error = _refused(user, "target", target_path=str(SAMPLES / "vulnerable_app" / ".." / ".."))
    assert "outside the allowed folders" in str(error)


@pytest.mark.usefixtures("nothing_written")
def test_symlink_escape_from_a_target_root_is_refused(
    user: User, tmp_path: Path, settings: Any
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "escape").symlink_to(ROOT / "runs")
    settings.HARNESS_TARGET_ROOTS = [root]
    _refused(user, "target", target_path=str(root / "escape"))


@pytest.mark.usefixtures("nothing_written")
def test_nonexistent_directory_is_refused(user: User) -> None:
    error = _refused(user, "target", target_path=str(SAMPLES / "does-not-exist"))
    assert "does not exist" in str(error)


@pytest.mark.usefixtures("nothing_written")
def test_directory_without_text_files_is_refused(user: User, tmp_path: Path, settings: Any) -> None:
    (tmp_path / "bin").write_bytes(b"\x00\x01\x02" * 100)
    settings.HARNESS_TARGET_ROOTS = [tmp_path]
    _refused(user, "target", target_path=str(tmp_path))


# --- archives ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_written")
def test_archive_with_dotdot_entry_is_refused(user: User) -> None:
    data = _zip({"ok.py": b"x = 1\n", "../evil.txt": b"pwned"})
    error = _refused(user, "archive", archive=_upload(data))
    assert "unsafe path" in str(error)


@pytest.mark.usefixtures("nothing_written")
def test_archive_with_absolute_entry_is_refused(user: User) -> None:
    data = _zip({"ok.py": b"x = 1\n", "/etc/evil.txt": b"pwned"})
    _refused(user, "archive", archive=_upload(data))


@pytest.mark.usefixtures("nothing_written")
def test_tar_with_symlink_entry_is_refused(user: User) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        archive.addfile(info)
    _refused(user, "archive", archive=_upload(buffer.getvalue(), "target.tar.gz"))


@pytest.mark.usefixtures("nothing_written")
def test_zip_bomb_is_refused(user: User) -> None:
    data = _zip({"zeros.txt": b"0" * (8 * 1024 * 1024)})
    assert len(data) < 100_000  # a high compression ratio
    error = _refused(user, "archive", archive=_upload(data))
    assert "ratio" in str(error) or "bomb" in str(error)


@pytest.mark.usefixtures("nothing_written")
def test_corrupt_archive_is_refused(user: User) -> None:
    data = bytearray(_zip({"a.py": b"print('hello')\n" * 50}))
    data[10:60] = b"\xff" * 50
    _refused(user, "archive", archive=_upload(bytes(data)))


@pytest.mark.usefixtures("nothing_written")
def test_not_an_archive_is_refused(user: User) -> None:
    _refused(user, "archive", archive=_upload(b"just some text, not a zip"))


@pytest.mark.usefixtures("nothing_written")
def test_unsupported_archive_type_is_refused(user: User) -> None:
    _refused(user, "archive", archive=_upload(_zip({"a.py": b"x\n"}), "target.rar"))


@pytest.mark.usefixtures("nothing_written")
def test_archive_over_upload_limit_is_refused(user: User, settings: Any) -> None:
    settings.HARNESS_MAX_UPLOAD_BYTES = 10
    error = _refused(user, "archive", archive=_upload(_zip({"a.py": b"x = 1\n"})))
    assert "larger than" in str(error)


def test_refused_archive_leaves_no_manifest(user: User, settings: Any) -> None:
    from agents.snapshot import snapshot_store

    manifests = snapshot_store() / "manifests"
    before = set(manifests.glob("*.json")) if manifests.exists() else set()
    data = _zip({"fine.py": b"x = 'unique-refused-content'\n", "../evil.txt": b"pwned"})
    with pytest.raises(LaunchError):
        launch_run(user=user, playbook="codebase-audit", archive=_upload(data))
    after = set(manifests.glob("*.json")) if manifests.exists() else set()
    assert after == before


# --- a valid launch ---------------------------------------------------------------------------


def test_valid_launch_creates_one_pending_run_with_created_event(
    user: User,
    django_capture_on_commit_callbacks: Callable[..., Any],
    _no_enqueue: mock.MagicMock,
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = launch_run(
            user=user,
            playbook="codebase-audit",
            target_path=str(APP),
            # Deliberate: a form-style string, coerced to an int by launch_run at runtime.
            max_concurrency="3",  # type: ignore[arg-type]
            budget_usd="2.50",
        )
    assert Run.objects.count() == 1
    run.refresh_from_db()
    assert run.status == Run.Status.PENDING
    assert run.launched_by == user
    assert run.max_concurrency == 3
    assert str(run.budget_usd).startswith("2.5")
    assert run.snapshot_digest and len(run.snapshot_digest) == 64
    assert run.snapshot_info["files"] > 0
    assert Task.objects.filter(run=run).count() == 0
    events = list(Event.objects.filter(run=run).order_by("seq"))
    assert [(e.seq, e.type) for e in events] == [(1, "run.created")]
    assert events[0].payload["playbook"] == "codebase-audit"
    assert events[0].payload["launched_by"] == user.username
    # Planning is enqueued only on commit, exactly once.
    assert callbacks
    _no_enqueue.assert_not_called()
    for callback in callbacks:
        callback()
    _no_enqueue.assert_called_once_with("runs.plan_run", run.pk)


def test_valid_archive_launch_creates_one_pending_run(user: User) -> None:
    data = _zip({"pkg/app.py": b"import os\nos.system('ls')\n", "README.md": b"# hi\n"})
    run = launch_run(user=user, playbook="codebase-audit", archive=_upload(data, "code.zip"))
    assert Run.objects.get() == run
    assert run.status == Run.Status.PENDING
    assert run.target_kind == "archive"
    assert run.snapshot_info["files"] == 2
    assert list(Event.objects.filter(run=run).values_list("seq", "type")) == [(1, "run.created")]


def test_valid_launch_freezes_the_resolved_playbook_into_the_run(user: User) -> None:
    from agents.playbooks import Playbook

    run = launch_run(
        user=user,
        playbook="ensemble",
        target_path=str(APP),
        role_models={"synthesizer": "big-model"},
        options={"k": 3},
    )
    book = Playbook.from_config(
        {k: v for k, v in run.config.items() if k != "max_agents"}
        | {"max_agents": run.config["max_agents"]}
    )
    assert book.options["k"] == 3
    assert book.roles["synthesizer"].model == "big-model"
    assert book.roles["voter"].provider == "heuristic"


def test_two_launches_of_the_same_target_share_the_snapshot(user: User) -> None:
    first = launch_run(user=user, playbook="codebase-audit", target_path=str(APP))
    second = launch_run(user=user, playbook="codebase-audit", target_path=str(APP))
    assert first.pk != second.pk
    assert first.snapshot_digest == second.snapshot_digest
    assert Event.objects.filter(run=second).values_list("seq", flat=True).get() == 1


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize(
    ("provider", "variable"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")]
)
def test_a_provider_without_its_key_is_refused_naming_the_variable(
    user: User, monkeypatch: pytest.MonkeyPatch, provider: str, variable: str
) -> None:
    monkeypatch.delenv(variable, raising=False)
    error = _refused(user, "provider", provider=provider)
    assert variable in str(error)


@pytest.mark.usefixtures("nothing_written")
def test_a_target_needing_more_agents_than_the_run_allows_is_refused_before_any_row(
    user: User, settings: Any
) -> None:
    # The sample needs 9 agents (3 chunks x 3 lenses); this run allows 4.
    error = _refused(user, "target", options={"max_agents": 4})
    assert "needs 9 agents but the run allows 4" in str(error)
    assert f"at most {settings.HARNESS_MAX_AGENTS}" in str(error)


@pytest.mark.parametrize("sigma", [-0.1, 3.5, "wide"])
def test_a_latency_sigma_out_of_bounds_is_refused_before_any_row(sigma: Any) -> None:
    with pytest.raises(LaunchError, match="Latency sigma"):
        launch_run(user=None, playbook="ensemble", target_path=str(APP), latency_sigma=sigma)
    assert not Run.objects.exists()


def test_a_latency_sigma_is_frozen_into_the_runs_options() -> None:
    run = launch_run(
        user=None, playbook="ensemble", target_path=str(APP), latency_ms=100, latency_sigma=1.0
    )
    assert run.resolved_playbook.options["latency_sigma"] == 1.0
    assert run.latency_ms == 100
