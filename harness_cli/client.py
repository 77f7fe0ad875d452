"""A small client of the Agent Harness API (/api/v1/), on the standard library only, so the
`harness` command installs anywhere (``pip install --no-deps``) and needs nothing else."""

from __future__ import annotations

import io
import json
import os
import secrets
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Folders never worth uploading (the server leaves out its default excludes anyway).
SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox"}
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


class ApiError(Exception):
    """A refusal or an error of the API: its problem details (RFC 9457) when it sent them."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        super().__init__(problem.get("detail") or problem.get("title") or f"HTTP {status}")

    @property
    def field(self) -> str | None:
        value = self.problem.get("field")
        return str(value) if value else None


@dataclass
class Client:
    url: str
    token: str = field(repr=False)
    timeout: float = 60.0

    @classmethod
    def from_env(cls, url: str | None = None) -> Client:
        base = (url or os.environ.get("HARNESS_URL", "")).rstrip("/")
        token = os.environ.get("HARNESS_TOKEN", "")
        if not base:
            raise SystemExit("harness: set HARNESS_URL (e.g. https://harness.example.com)")
        if not token:
            raise SystemExit("harness: set HARNESS_TOKEN (Settings → API tokens on the server)")
        return cls(base, token)

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = ""
    ) -> tuple[bytes, dict[str, str]]:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(  # noqa: S310 - the user's own server, http(s)
            f"{self.url}{path}", data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return response.read(), dict(response.headers.items())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                problem = json.loads(raw)
            except ValueError:
                problem = {"detail": raw.decode("utf-8", "replace")[:500] or exc.reason}
            raise ApiError(exc.code, problem if isinstance(problem, dict) else {}) from None

    def get(self, path: str) -> Any:
        return json.loads(self.request("GET", path)[0])

    def post(self, path: str, data: dict[str, Any] | None = None) -> Any:
        body = json.dumps(data or {}).encode()
        return json.loads(self.request("POST", path, body, "application/json")[0])

    def launch(self, launch: dict[str, Any], upload: Path | None = None) -> Any:
        """POST /api/v1/runs/: a JSON launch, or multipart with ``upload`` as the archive (a
        folder is zipped first)."""
        if upload is None:
            return self.post("/api/v1/runs/", launch)
        name, data = archive_of(upload)
        body, content_type = multipart(
            {"launch": json.dumps(launch)}, {"archive": (name, data, "application/octet-stream")}
        )
        return json.loads(self.request("POST", "/api/v1/runs/", body, content_type)[0])

    def export(self, run_id: int, version: int, fmt: str) -> bytes:
        return self.request("GET", f"/api/v1/runs/{run_id}/reports/{version}/export/{fmt}")[0]


def archive_of(path: Path) -> tuple[str, bytes]:
    """(file name, bytes) to upload: an archive file as it is, a folder zipped in memory."""
    if path.is_file():
        if not path.name.lower().endswith(ARCHIVE_SUFFIXES):
            raise SystemExit(f"harness: {path} is not a folder nor a .zip / .tar.gz archive")
        return path.name, path.read_bytes()
    if not path.is_dir():
        raise SystemExit(f"harness: no such folder or archive: {path}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for name in sorted(files):
                full = Path(root) / name
                if full.is_symlink() or not full.is_file():
                    continue  # a link could point outside the folder: never followed
                archive.write(full, full.relative_to(path).as_posix())
    return f"{path.resolve().name or 'target'}.zip", buffer.getvalue()


def multipart(
    fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]
) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type."""
    boundary = f"harness-{secrets.token_hex(16)}"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, (filename, data, kind) in files.items():
        safe = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
        parts.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{safe}"\r\nContent-Type: {kind}\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
