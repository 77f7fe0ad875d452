"""Generated targets: a directory of small Python modules, each with the same known problems."""

from __future__ import annotations

from pathlib import Path

VULNERABLE_MODULE = """\
import os
import pickle
import subprocess

import requests

API_TOKEN = "tok-{n}-not-a-real-secret-value"


def handler_{n}(request, cursor):
    cmd = request.args.get("cmd")
    subprocess.run(cmd, shell=True)
    cursor.execute("SELECT * FROM users WHERE id = %s" % request.args["id"])
    data = requests.get("http://example.invalid/{n}")
    try:
        return pickle.loads(data.content)
    except Exception:
        pass


def helper_{n}(values=[]):
    # TODO: make this faster
    return eval(os.environ.get("EXPR_{n}", "1"))
"""


def make_target(root: Path, files: int, name: str = "target") -> Path:
    """A directory of ``files`` small Python modules, each with the same known problems (so
    every agent of a lens finds as many as the others: a lost or doubled finding shows)."""
    target = root / name
    for i in range(files):
        package = target / f"pkg{i // 10}"
        package.mkdir(parents=True, exist_ok=True)
        (package / f"mod{i}.py").write_text(VULNERABLE_MODULE.replace("{n}", str(i)))
    return target
