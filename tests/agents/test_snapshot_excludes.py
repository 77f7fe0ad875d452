"""Excludes: files nobody reviews (translation catalogues, lock files, generated and vendored
folders, minified bundles) are left out of a snapshot by default, a launch adds its own globs
(.gitignore syntax), and every file left out is listed with the reason."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from agents.snapshot import (
    Excludes,
    SnapshotError,
    exclude_patterns,
    freeze_archive,
    freeze_directory,
)

CODE = "def main():\n    return 42\n"

# path -> the reason it is left out by default (None: kept).
TREE: dict[str, str | None] = {
    "app/views.py": None,
    "app/build.py": None,  # a file named like a build folder is code
    "app/locale/fr/LC_MESSAGES/django.po": "excluded by default: translation catalogue",
    "app/locale/fr/LC_MESSAGES/django.mo": "excluded by default: translation catalogue",
    "package-lock.json": "excluded by default: lock file",
    "poetry.lock": "excluded by default: lock file",
    "web/yarn.lock": "excluded by default: lock file",
    "web/static/app.min.js": "excluded by default: minified file",
    "web/static/app.js": None,
    "node_modules": "excluded by default: dependency folder",
    "vendor": "excluded by default: dependency folder",
    "dist": "excluded by default: build output",
    "web/build": "excluded by default: build output",
    "app/__pycache__": "excluded by default: bytecode cache",
}
FILES_IN = {
    "node_modules": "left-pad/index.js",
    "vendor": "lib/six.py",
    "dist": "bundle.js",
    "web/build": "out.js",
    "app/__pycache__": "views.cpython-312.pyc",
}


def make_tree(root: Path) -> Path:
    for path in TREE:
        inside = FILES_IN.get(path)
        file = root / path / inside if inside else root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(b"\xde\x12\x04\x95\x00" if path.endswith(".mo") else CODE.encode())
    return root


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    root = tmp_path / "allowed"
    make_tree(root / "target")
    return root


def test_the_defaults_leave_out_what_nobody_reviews_each_listed_with_its_reason(
    allowed: Path,
) -> None:
    manifest = freeze_directory(allowed / "target", [allowed], None)
    assert sorted(manifest.files) == sorted(p for p, why in TREE.items() if why is None)
    # A folder is listed once, not file by file.
    assert {item["path"]: item["reason"] for item in manifest.skipped} == {
        p: why for p, why in TREE.items() if why
    }


def test_a_launchs_own_globs_are_left_out_saying_which_glob(allowed: Path) -> None:
    manifest = freeze_directory(
        allowed / "target", [allowed], None, exclude=Excludes(["web/*", "app/views.py"])
    )
    reasons = {item["path"]: item["reason"] for item in manifest.skipped}
    assert reasons["web/static"] == "excluded by --exclude 'web/*'"
    assert reasons["app/views.py"] == "excluded by --exclude 'app/views.py'"
    assert reasons["poetry.lock"] == "excluded by default: lock file"  # defaults still apply
    assert list(manifest.files) == ["app/build.py"]


def test_the_defaults_can_be_turned_off_or_overridden_one_by_one(allowed: Path) -> None:
    everything = freeze_directory(
        allowed / "target", [allowed], None, exclude=Excludes(defaults=False)
    )
    assert "app/locale/fr/LC_MESSAGES/django.po" in everything.files
    assert "node_modules/left-pad/index.js" in everything.files
    assert {"path": "app/locale/fr/LC_MESSAGES/django.mo", "reason": "binary"} in (
        everything.skipped
    )
    # .gitignore's negation keeps what one default leaves out; the others still apply.
    translations = freeze_directory(
        allowed / "target", [allowed], None, exclude=Excludes(["!*.po"])
    )
    assert "app/locale/fr/LC_MESSAGES/django.po" in translations.files
    assert "poetry.lock" not in translations.files


def test_an_archive_is_excluded_as_a_directory_is(allowed: Path, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in sorted((allowed / "target").rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(allowed / "target").as_posix())
    buffer.seek(0)
    manifest = freeze_archive(buffer, "target.zip", tmp_path / "store", exclude=Excludes(["*.js"]))
    directory = freeze_directory(allowed / "target", [allowed], None, exclude=Excludes(["*.js"]))
    assert manifest.digest == directory.digest
    assert sorted(map(str, manifest.skipped), key=str) == sorted(
        map(str, directory.skipped), key=str
    )


def test_files_past_the_listing_limit_are_still_counted_by_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agents.snapshot.base.MAX_SKIPPED_LISTED", 3)
    root = tmp_path / "allowed"
    (root / "locale").mkdir(parents=True)
    (root / "app.py").write_text(CODE)
    for n in range(6):
        (root / "locale" / f"{n}.po").write_text('msgid ""\n')
    (root / "z.bin").write_bytes(b"\x00")  # walked last, past the limit too
    manifest = freeze_directory(root, [root], None)
    assert manifest.skipped[-1] == {
        "path": "…",
        "reason": "4 more skipped, not listed (3 excluded by default: translation catalogue, "
        "1 binary)",
    }


@pytest.mark.parametrize(
    ("value", "patterns"),
    [
        (None, []),
        ("*.txt", ["*.txt"]),
        ("docs/, *.txt\n\n  tests/*  ", ["docs/", "*.txt", "tests/*"]),
        (["a/*", " b.py "], ["a/*", "b.py"]),
    ],
)
def test_patterns_are_read_from_a_list_or_from_text(
    value: str | list[str] | None, patterns: list[str]
) -> None:
    assert exclude_patterns(value) == patterns


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!", "is not a valid glob"),
        ("/", "matches nothing"),
        (["a", 3], "must be globs"),
        ({"a": 1}, "must be globs"),
        ("x" * 301, "longer than 300 characters"),
        ([f"p{n}" for n in range(101)], "at most 100 globs"),
    ],
)
def test_bad_patterns_are_refused_with_a_clear_message(value: object, message: str) -> None:
    with pytest.raises(SnapshotError, match=message):
        exclude_patterns(value)


def test_a_target_that_is_one_file_is_read_whatever_the_excludes(allowed: Path) -> None:
    one = allowed / "target" / "poetry.lock"
    assert list(freeze_directory(one, [allowed], None).files) == ["poetry.lock"]
