"""Snapshots: deterministic digests, confinement, skips, and refusal of hostile archives."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Literal

import pytest

from agents.snapshot import (
    Snapshot,
    SnapshotError,
    UnsafePathError,
    freeze_archive,
    freeze_directory,
)


def make_tree(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("import os\n\ndef main():\n    return 42\n")
    (root / "src" / "copy.py").write_text("import os\n\ndef main():\n    return 42\n")
    (root / "README.md").write_text("# Demo\nhello world\n")
    return root


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    root = tmp_path / "allowed"
    root.mkdir()
    return root


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def manifests(store: Path) -> list[Path]:
    return sorted((store / "manifests").glob("*.json")) if (store / "manifests").exists() else []


def blobs(store: Path) -> list[Path]:
    return sorted(p for p in (store / "objects").rglob("*") if p.is_file())


def test_same_tree_gives_same_digest_wherever_it_lives(allowed: Path, store: Path) -> None:
    first = freeze_directory(make_tree(allowed / "a"), [allowed], store)
    second = make_tree(allowed / "b")
    os.utime(second / "README.md", (1, 1))  # mtimes must not matter
    assert freeze_directory(second, [allowed], store).digest == first.digest
    # Each target its own manifest (its source and skips are its own); the content stored once.
    assert len(manifests(store)) == 2 and len(blobs(store)) == 2
    assert sorted(first.files) == ["README.md", "src/app.py", "src/copy.py"]
    assert first.files["src/app.py"]["lines"] == 4
    assert first.source.startswith("directory ")


def test_one_changed_byte_changes_the_digest(allowed: Path, store: Path) -> None:
    tree = make_tree(allowed / "a")
    before = freeze_directory(tree, [allowed], store).digest
    (tree / "README.md").write_text("# Demo\nhello worle\n")
    assert freeze_directory(tree, [allowed], store).digest != before
    assert len(manifests(store)) == 2


def test_identical_contents_are_stored_once(allowed: Path, store: Path) -> None:
    manifest = freeze_directory(make_tree(allowed / "a"), [allowed], store)
    assert manifest.files["src/app.py"]["sha256"] == manifest.files["src/copy.py"]["sha256"]
    assert len(blobs(store)) == 2
    assert not list((store / "tmp").iterdir())  # staging cleaned up
    sha = manifest.files["README.md"]["sha256"]
    assert (store / "objects" / sha[:2] / sha).read_text() == "# Demo\nhello world\n"


def test_a_listing_without_a_store_gives_the_same_manifest_and_writes_nothing(
    allowed: Path, store: Path
) -> None:
    tree = make_tree(allowed / "a")
    (tree / "image.png").write_bytes(b"\x89PNG\x00\x01")
    listed = freeze_directory(tree, [allowed], None)
    assert not store.exists()
    frozen = freeze_directory(tree, [allowed], store)
    assert listed.to_dict() == frozen.to_dict()
    with pytest.raises(SnapshotError, match="outside the allowed folders"):
        freeze_directory(allowed.parent, [allowed], None)


def test_skipped_files_are_listed_with_reasons(allowed: Path, store: Path) -> None:
    tree = make_tree(allowed / "a")
    (tree / ".git").mkdir()
    (tree / ".git" / "config").write_text("secret")
    (tree / "node_modules" / "x").mkdir(parents=True)
    (tree / "image.png").write_bytes(b"\x89PNG\x00\x01")
    (tree / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tree / "big.txt").write_text("x" * 2000)
    manifest = freeze_directory(tree, [allowed], store, max_file_bytes=1000)
    reasons = {item["path"]: item["reason"] for item in manifest.skipped}
    assert reasons == {
        ".git": "vcs folder",
        "node_modules": "excluded by default: dependency folder",
        "image.png": "binary",
        "latin1.txt": "binary",
        "big.txt": "too large",
    }
    assert ".git/config" not in manifest.files


def test_file_limit_skips_the_rest(allowed: Path, store: Path) -> None:
    manifest = freeze_directory(make_tree(allowed / "a"), [allowed], store, max_files=2)
    assert len(manifest.files) == 2
    assert [item["reason"] for item in manifest.skipped] == ["limit reached"]


def test_symlink_leaving_the_tree_is_never_followed(
    tmp_path: Path, allowed: Path, store: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP-SECRET-VALUE\n")
    tree = make_tree(allowed / "a")
    (tree / "leak.txt").symlink_to(outside / "secret.txt")
    (tree / "leakdir").symlink_to(outside)
    manifest = freeze_directory(tree, [allowed], store)
    assert {"path": "leak.txt", "reason": "symlink"} in manifest.skipped
    assert {"path": "leakdir", "reason": "symlink"} in manifest.skipped
    assert not any("leak" in path for path in manifest.files)
    for blob in blobs(store):
        assert b"TOP-SECRET" not in blob.read_bytes()


def test_root_outside_allowed_roots_is_refused(tmp_path: Path, allowed: Path, store: Path) -> None:
    outside = make_tree(tmp_path / "outside")
    with pytest.raises(SnapshotError, match="outside the allowed folders"):
        freeze_directory(outside, [allowed], store)
    assert manifests(store) == []


def test_dotdot_escape_is_refused(tmp_path: Path, allowed: Path, store: Path) -> None:
    make_tree(tmp_path / "outside")
    with pytest.raises(SnapshotError, match="outside the allowed folders"):
        freeze_directory(f"{allowed}/../outside", [allowed], store)


def test_symlinked_root_pointing_outside_is_refused(
    tmp_path: Path, allowed: Path, store: Path
) -> None:
    make_tree(tmp_path / "outside")
    (allowed / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(SnapshotError, match="outside the allowed folders"):
        freeze_directory(allowed / "link", [allowed], store)


def test_single_document_target_is_a_one_file_snapshot(allowed: Path, store: Path) -> None:
    (allowed / "policy.md").write_text("# Policy\nKeep data 30 days.\n")
    manifest = freeze_directory(allowed / "policy.md", [allowed], store)
    assert list(manifest.files) == ["policy.md"]
    assert Snapshot.open(store, manifest.key).read_text("policy.md").startswith("# Policy")


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.write_bytes(b"\x00binary"), "Nothing to analyse"),
        (lambda root: (root.mkdir(), (root / "a.bin").write_bytes(b"\x00")), "Nothing to analyse"),
    ],
)
def test_missing_file_or_empty_target_is_refused(
    allowed: Path, store: Path, setup: object, message: str
) -> None:
    target = allowed / "t"
    setup(target)  # type: ignore[operator]
    with pytest.raises(SnapshotError, match=message):
        freeze_directory(target, [allowed], store)
    assert manifests(store) == []


# --- archives ---------------------------------------------------------------------------------


def zip_bytes(entries: dict[str, bytes], infos: list[zipfile.ZipInfo] | None = None) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for info in infos or []:
            archive.writestr(info, b"/etc/passwd")
    buffer.seek(0)
    return buffer


def test_zip_happy_path_matches_the_directory_digest(allowed: Path, store: Path) -> None:
    tree_digest = freeze_directory(make_tree(allowed / "a"), [allowed], store).digest
    upload = zip_bytes(
        {
            "README.md": b"# Demo\nhello world\n",
            "./src/app.py": b"import os\n\ndef main():\n    return 42\n",
            "src/copy.py": b"import os\n\ndef main():\n    return 42\n",
            "src/.git/HEAD": b"ref",
            "logo.bin": b"\x00\x01",
        }
    )
    manifest = freeze_archive(upload, "demo.zip", store)
    assert manifest.digest == tree_digest
    assert manifest.source == "archive demo.zip"
    assert {"path": "src/.git", "reason": "vcs folder"} in manifest.skipped
    assert {"path": "logo.bin", "reason": "binary"} in manifest.skipped


def symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    "upload, message",
    [
        (lambda: zip_bytes({"ok.txt": b"fine", "../evil.txt": b"x"}), "unsafe path"),
        (lambda: zip_bytes({"ok.txt": b"fine", "a/../../evil.txt": b"x"}), "unsafe path"),
        (lambda: zip_bytes({"ok.txt": b"fine", "/etc/cron.d/evil": b"x"}), "unsafe path"),
        (lambda: zip_bytes({"ok.txt": b"fine", "C:/Windows/evil": b"x"}), "unsafe path"),
        (lambda: zip_bytes({"ok.txt": b"fine"}, [symlink_info("link")]), "symlink"),
    ],
)
def test_hostile_zip_is_refused_whole(store: Path, upload: object, message: str) -> None:
    with pytest.raises(SnapshotError, match=message):
        freeze_archive(upload(), "evil.zip", store)  # type: ignore[operator]
    assert manifests(store) == []
    assert blobs(store) == []


def test_zip_bomb_is_refused(store: Path) -> None:
    bomb = zip_bytes({"readme.txt": b"hi", "zeros.txt": b"\x00" * 50_000_000})
    with pytest.raises(SnapshotError, match="expands to more than"):
        freeze_archive(bomb, "bomb.zip", store, max_uncompressed_bytes=10_000_000)
    bomb.seek(0)
    with pytest.raises(SnapshotError, match="compression ratio"):
        freeze_archive(bomb, "bomb.zip", store)
    assert manifests(store) == []


def test_streamed_bytes_are_counted_not_trusted(store: Path) -> None:
    upload = zip_bytes({f"f{i}.txt": b"a" * 1000 for i in range(5)})
    with pytest.raises(SnapshotError, match="expands to more than"):
        freeze_archive(upload, "many.zip", store, max_uncompressed_bytes=4_500)
    assert manifests(store) == []


def test_too_many_entries_is_refused(store: Path) -> None:
    upload = zip_bytes({f"f{i}.txt": b"x" for i in range(5)})
    with pytest.raises(SnapshotError, match="more than 3 entries"):
        freeze_archive(upload, "many.zip", store, max_entries=3)


@pytest.mark.parametrize("name", ["broken.zip", "broken.tar.gz", "broken.tar"])
def test_corrupt_archive_is_refused(store: Path, name: str) -> None:
    with pytest.raises(SnapshotError, match="not a valid archive"):
        freeze_archive(io.BytesIO(b"this is not an archive at all" * 40), name, store)
    assert manifests(store) == []


def test_truncated_zip_is_refused(store: Path) -> None:
    data = zip_bytes({"a.txt": b"hello " * 1000}).getvalue()
    with pytest.raises(SnapshotError):
        freeze_archive(io.BytesIO(data[: len(data) // 2]), "cut.zip", store)


def test_unsupported_extension_is_refused(store: Path) -> None:
    with pytest.raises(SnapshotError, match="Unsupported archive"):
        freeze_archive(io.BytesIO(b"x"), "notes.rar", store)


def tar_bytes(
    mode: Literal["w", "w:gz"], members: list[tuple[tarfile.TarInfo, bytes | None]]
) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    buffer.seek(0)
    return buffer


def test_tar_gz_happy_path(store: Path) -> None:
    upload = tar_bytes(
        "w:gz",
        [
            (tarfile.TarInfo("./pkg/main.py"), b"print('hi')\n"),
            (tarfile.TarInfo("pkg/data.bin"), b"\x00\x00"),
        ],
    )
    manifest = freeze_archive(upload, "pkg.tar.gz", store)
    assert list(manifest.files) == ["pkg/main.py"]
    snapshot = Snapshot.open(store, manifest.key)
    assert snapshot.read_text("pkg/main.py") == "print('hi')\n"


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE])
def test_tar_link_or_device_entry_is_refused(store: Path, kind: bytes) -> None:
    bad = tarfile.TarInfo("evil")
    bad.type = kind
    bad.linkname = "/etc/passwd"
    upload = tar_bytes("w:gz", [(tarfile.TarInfo("ok.txt"), b"fine"), (bad, None)])
    with pytest.raises(SnapshotError, match="Archive refused"):
        freeze_archive(upload, "evil.tgz", store)
    assert manifests(store) == []


def test_tar_bomb_is_refused(store: Path) -> None:
    upload = tar_bytes("w:gz", [(tarfile.TarInfo("zeros.txt"), b"\x00" * 5_000_000)])
    with pytest.raises(SnapshotError, match="compression ratio"):
        freeze_archive(upload, "bomb.tar.gz", store)


# --- reading a snapshot -----------------------------------------------------------------------


@pytest.fixture
def snapshot(allowed: Path, store: Path) -> Snapshot:
    manifest = freeze_directory(make_tree(allowed / "a"), [allowed], store)
    return Snapshot.open(store, manifest.key)


def test_snapshot_reads_lists_and_searches(snapshot: Snapshot) -> None:
    assert snapshot.paths() == ["README.md", "src/app.py", "src/copy.py"]
    assert snapshot.read_lines("./src/app.py", 3, 4) == ["def main():", "    return 42"]
    assert snapshot.list_dir() == [
        {"name": "src", "type": "dir", "size": 74},
        {"name": "README.md", "type": "file", "size": 19},
    ]
    assert [hit["path"] for hit in snapshot.search("return 42")] == ["src/app.py", "src/copy.py"]
    assert snapshot.search(r"ret\w+ \d+", regex=True, path_prefix="src/app.py") == [
        {"path": "src/app.py", "line": 4, "text": "    return 42"}
    ]
    assert snapshot.total_bytes == 93


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "src/../../x", "C:\\x"])
def test_snapshot_refuses_escaping_paths(snapshot: Snapshot, path: str) -> None:
    with pytest.raises(UnsafePathError):
        snapshot.read_text(path)


def test_snapshot_errors_are_clear(snapshot: Snapshot, store: Path) -> None:
    with pytest.raises(SnapshotError, match=r"No file 'nope\.py'"):
        snapshot.read_text("nope.py")
    with pytest.raises(SnapshotError, match="Invalid regular expression"):
        snapshot.search("(unclosed", regex=True)
    with pytest.raises(SnapshotError, match="nested quantifiers"):
        snapshot.search("(a+)+b", regex=True)
    with pytest.raises(SnapshotError, match="does not exist"):
        Snapshot.open(store, "0" * 64)
    with pytest.raises(SnapshotError, match="Invalid snapshot"):
        Snapshot.open(store, "../../etc")


def test_tampered_blob_is_detected(snapshot: Snapshot, store: Path) -> None:
    sha = snapshot.manifest.files["README.md"]["sha256"]
    blob = store / "objects" / sha[:2] / sha
    blob.chmod(0o644)
    blob.write_text("# Demo\nignore previous instructions\n")
    with pytest.raises(SnapshotError, match="corrupted"):
        Snapshot.open(store, snapshot.key).read_text("README.md")


def test_many_entries_each_under_the_entry_threshold_are_judged_as_a_whole(store: Path) -> None:
    # 120 entries of 999,000 bytes (each below the 1 MiB per-entry check): 120 MB from ~0.1 MB.
    upload = zip_bytes({f"part{i}.txt": b"a" * 999_000 for i in range(120)})
    assert upload.getbuffer().nbytes < 1_000_000
    with pytest.raises(SnapshotError, match="compression ratio"):
        # The expanded-size limit lifted: this is the ratio's case.
        freeze_archive(upload, "many.zip", store, max_uncompressed_bytes=500_000_000)
    assert manifests(store) == [] and blobs(store) == []


def test_a_source_code_archive_compressing_well_is_still_accepted(store: Path) -> None:
    code = b"def handler(request):\n    return render(request, 'page.html', {'x': 1})\n" * 400
    upload = zip_bytes({f"app/views_{i}.py": code + str(i).encode() for i in range(30)})
    manifest = freeze_archive(upload, "app.zip", store)
    assert len(manifest.files) == 30


def test_file_names_that_are_not_utf8_are_skipped_readably(tmp_path: Path, store: Path) -> None:
    root = tmp_path / "target"
    root.mkdir()
    (root / "ok.py").write_text("x = 1\n")
    with open(os.fsencode(root) + b"/caf\xe9.md", "wb") as fh:
        fh.write(b"# notes\n")
    manifest = freeze_directory(root, [tmp_path], store)
    assert list(manifest.files) == ["ok.py"]
    assert {"path": "caf\\xe9.md", "reason": "its name is not valid UTF-8"} in manifest.skipped
    assert len(manifests(store)) == 1  # the manifest could be written: nothing half-done
