"""A generated codebase with uneven flaw density, for measuring adaptive fan-out.

``write_uneven_target`` writes ``folders`` folders of ``files`` Python modules each. Most folders
are clean; ``flawed`` of them (picked by the seed) have flaws in most of their files, and
``stray`` single flaws sit in otherwise clean folders (what a sample can miss). Every flaw is
one the offline analyzer really reports (shell, pickle, eval, SQL by string formatting, weak
hash, unsafe YAML, hard-coded secret, swallowed exception), written with its own names and
strings, so two flaws of one kind are different code. The same seed writes the same tree.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

FOLDER_NAMES = [
    "accounts",
    "api",
    "audit",
    "billing",
    "cache",
    "cli",
    "config",
    "core",
    "crypto",
    "db",
    "events",
    "export",
    "gateway",
    "imports",
    "jobs",
    "mail",
    "media",
    "metrics",
    "notify",
    "orders",
    "payments",
    "reports",
    "search",
    "sessions",
    "storage",
    "sync",
    "tasks",
    "users",
    "web",
    "webhooks",
]
VERBS = [
    "load",
    "fetch",
    "build",
    "parse",
    "render",
    "sync",
    "store",
    "read",
    "apply",
    "check",
    "compute",
    "merge",
]
NOUNS = [
    "invoice",
    "order",
    "user",
    "report",
    "record",
    "batch",
    "entry",
    "token",
    "profile",
    "item",
    "ledger",
    "queue",
]
COMMANDS = ["ls", "tar", "gzip", "du", "wc", "grep", "sort", "rsync", "cp", "find"]
TABLES = ["users", "orders", "invoices", "items", "profiles", "sessions", "ledgers"]

# One flaw each: (imports it needs, the function's body lines with {fn} {arg} {word} {table}).
FLAWS: tuple[tuple[str, str], ...] = (
    ("import subprocess", 'return subprocess.call("{word} " + {arg}, shell=True)'),
    ("import pickle", "return pickle.loads({arg})"),
    ("", "return eval({arg})"),
    ("", "return db.execute(\"SELECT * FROM {table} WHERE name = '%s'\" % {arg})"),
    ("import hashlib", "return hashlib.md5({arg}.encode()).hexdigest()"),
    ("import yaml", "return yaml.load({arg})"),
    ("", "try:\n        return int({arg})\n    except Exception:\n        pass"),
)
PLANTED_KEY = '{name}_API_KEY = "sk-live-{token}"'


@dataclass
class Layout:
    """What was written: the folders, which are dense, and how many flaws were planted."""

    folders: list[str]
    dense: list[str]
    stray_files: list[str] = field(default_factory=list)
    planted: int = 0


def _clean_function(rng: random.Random, used: set[str]) -> list[str]:
    name = _name(rng, used)
    left, right = rng.sample("abcdefgh", 2)
    return [
        f"def {name}({left}, {right}):",
        f'    """Combine {left} and {right} for the {rng.choice(NOUNS)} view."""',
        f"    return {left} + {right}",
    ]


def _name(rng: random.Random, used: set[str]) -> str:
    while True:
        name = f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}_{rng.randrange(1000)}"
        if name not in used:
            used.add(name)
            return name


def _flaw(rng: random.Random, used: set[str], imports: set[str]) -> list[str]:
    if rng.random() < 1 / (len(FLAWS) + 1):
        token = "".join(rng.choice("abcdef0123456789") for _ in range(24))
        return [PLANTED_KEY.format(name=_name(rng, used).upper(), token=token)]
    needs, body = rng.choice(FLAWS)
    if needs:
        imports.add(needs)
    name = _name(rng, used)
    arg = f"{rng.choice(NOUNS)}_{rng.choice(['text', 'value', 'raw', 'blob'])}"
    words = {"fn": name, "arg": arg, "word": rng.choice(COMMANDS), "table": rng.choice(TABLES)}
    params = f"db, {arg}" if "db." in body else arg
    return [f"def {name}({params}):", "    " + body.format(**words)]


def _module(rng: random.Random, flaws: int) -> str:
    used: set[str] = set()
    imports: set[str] = set()
    blocks = [_clean_function(rng, used) for _ in range(rng.randint(2, 4))]
    for _ in range(flaws):
        blocks.insert(rng.randrange(len(blocks) + 1), _flaw(rng, used, imports))
    head = [f'"""The {rng.choice(NOUNS)} helpers."""', ""]
    if imports:
        head += [*sorted(imports), ""]
    body = "\n\n\n".join("\n".join(block) for block in blocks)
    return "\n".join(head) + "\n\n" + body + "\n"


def write_uneven_target(
    root: Path,
    *,
    seed: int,
    folders: int = 20,
    files: int = 10,
    flawed: int = 3,
    stray: int = 1,
    density: float = 0.8,
) -> Layout:
    """Write the tree under ``root`` (created) and say what it holds."""
    rng = random.Random(seed)
    names = sorted(rng.sample(FOLDER_NAMES, folders))
    dense = sorted(rng.sample(names, flawed))
    clean = [n for n in names if n not in dense]
    strays = {(rng.choice(clean), rng.randrange(files)) for _ in range(stray)} if clean else set()
    layout = Layout(folders=names, dense=dense)
    for folder in names:
        directory = root / folder
        directory.mkdir(parents=True, exist_ok=True)
        for index in range(files):
            count = 0
            if folder in dense and rng.random() < density:
                count = rng.randint(1, 3)
            if (folder, index) in strays:
                count = 1
                layout.stray_files.append(f"{folder}/mod_{index:02d}.py")
            layout.planted += count
            (directory / f"mod_{index:02d}.py").write_text(_module(rng, count))
    return layout
