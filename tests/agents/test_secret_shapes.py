"""A hard-coded "secret" needs a known key shape or random-looking text (or a password-like
value) to be reported; selectors, status messages and placeholders are not secrets. A shell
call on a constant command is not command injection."""

from __future__ import annotations

import pytest

from agents.analysis import analyze_code
from agents.analysis.secret_names import is_secret_value, shannon_entropy

GITHUB = "ghp_" + "x7Kq2Lm9Pz4Rt8Vw1Yb6Nc3Hd5Jf0Gs2Ae4"
SLACK = "xoxb-" + "1234567890-abcdefghij"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
GOOGLE = "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
JWT = "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxMjM0In0.abc"


def secrets(path: str, code: str) -> list[int]:
    return [f.line_start for f in analyze_code(path, code, "security") if f.rule == "sec.secret"]


@pytest.mark.parametrize("value", [GITHUB, SLACK, STRIPE, GOOGLE, JWT])
def test_known_key_shapes_are_secrets(value: str) -> None:
    assert is_secret_value("token", value)
    assert secrets("m.py", f'token = "{value}"\n') == [1]


def test_entropy_is_measured_per_character() -> None:
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == 2.0
    assert shannon_entropy("Zq8vX2mLp0Rt7KwB") >= 3.5


@pytest.mark.parametrize(
    ("lang", "code"),
    [
        ("py", 'api_key = "Zq8vX2mLp0Rt7KwB"\n'),
        ("js", 'const secretToken = "Zq8vX2mLp0Rt7KwB";\n'),
        ("py", 'SECRET_KEY = "changeme"\n'),
        ("py", 'db_password = "hunter22"\n'),
    ],
)
def test_random_looking_or_weak_signing_key_fires(lang: str, code: str) -> None:
    assert secrets(f"m.{lang}", code) == [1]


@pytest.mark.parametrize(
    ("lang", "code"),
    [
        ("js", 'const secretInput = ".secret-input";\n'),
        ("js", 'var passwordBox = "#password-box";\n'),
        ("js", 'const secretToggle = "secret-toggle";\n'),
        ("py", 'password = "Password updated successfully"\n'),
        ("py", 'token = "aaaaaaaaaaaaaaaaaaaa"\n'),
        ("py", 'SMTP_PASSWORD = "changeme"\n'),
        ("py", 'secret_path = "static/secret"\n'),
        ("py", 'auth_token = "/api/v1/token"\n'),
    ],
)
def test_selectors_messages_and_placeholders_stay_silent(lang: str, code: str) -> None:
    assert secrets(f"m.{lang}", code) == []


def test_shell_on_a_constant_command_is_silent_and_on_a_built_one_fires() -> None:
    code = (
        "import os, subprocess\n"
        'os.system("ls -l")\n'
        'subprocess.run("make clean", shell=True)\n'
        "os.system(cmd)\n"
        'subprocess.run("ls " + folder, shell=True)\n'
    )
    found = analyze_code("m.py", code, "security")
    assert [(f.line_start, f.rule) for f in found] == [(4, "sec.shell"), (5, "sec.shell")]
