"""Settings-level rules (py_settings, and the CSRF middleware check in py_framework): each
with a case that must be reported and a twin that must stay silent."""

from __future__ import annotations

from agents.analysis import analyze_code


def found(code: str, path: str = "settings.py") -> set[tuple[int, str]]:
    return {(f.line_start, f.rule) for f in analyze_code(path, code, "security")}


def test_weak_first_password_hasher_is_reported_and_a_strong_first_one_is_not() -> None:
    weak = (
        "PASSWORD_HASHERS = [\n"
        "    'django.contrib.auth.hashers.UnsaltedMD5PasswordHasher',\n"
        "    'django.contrib.auth.hashers.PBKDF2PasswordHasher',\n"
        "]\n"
    )
    assert found(weak) == {(2, "sec.weak_hash")}
    # MD5 kept after a strong hasher only verifies old hashes; new ones are PBKDF2.
    strong = (
        "PASSWORD_HASHERS = [\n"
        "    'django.contrib.auth.hashers.PBKDF2PasswordHasher',\n"
        "    'django.contrib.auth.hashers.MD5PasswordHasher',\n"
        "]\n"
    )
    assert found(strong) == set()


def test_pickle_sessions_and_cookie_sessions_signed_with_a_literal_key() -> None:
    code = (
        "import os\n"
        "SECRET_KEY = 'x' * 3\n"
        "SESSION_ENGINE = 'django.contrib.sessions.backends.signed_cookies'\n"
        "SESSION_SERIALIZER = 'django.contrib.sessions.serializers.PickleSerializer'\n"
    )
    assert found(code) == {(4, "sec.deserialize")}  # the key is not a literal string
    literal = code.replace("'x' * 3", "'dev-only-9f8e7d6c5b4a'")
    assert {r for _, r in found(literal)} >= {"sec.session_forgery", "sec.deserialize"}
    safe = (
        "import os\n"
        "SECRET_KEY = os.environ['SECRET_KEY']\n"
        "SESSION_ENGINE = 'django.contrib.sessions.backends.signed_cookies'\n"
        "SESSION_SERIALIZER = 'django.contrib.sessions.serializers.JSONSerializer'\n"
    )
    assert found(safe) == set()


def test_old_style_middleware_classes_without_csrf() -> None:
    code = (
        "MIDDLEWARE_CLASSES = (\n"
        "    'django.contrib.sessions.middleware.SessionMiddleware',\n"
        "    'django.middleware.common.CommonMiddleware',\n"
        ")\n"
    )
    assert (1, "sec.csrf") in found(code)
    with_csrf = code.replace(
        "CommonMiddleware',\n",
        "CommonMiddleware',\n    'django.middleware.csrf.CsrfViewMiddleware',\n",
    )
    assert (1, "sec.csrf") not in found(with_csrf)


def test_debug_switched_on_by_the_request() -> None:
    code = (
        "from flask import Flask, request\n"
        "app = Flask(__name__)\n"
        "@app.before_request\n"
        "def maybe_debug():\n"
        "    if request.args.get('debug') == '1':\n"
        "        app.debug = True\n"
        "def show_toolbar(request):\n"
        "    return request.GET.get('dbg') == 'on'\n"
        "def internal_toolbar(request):\n"
        "    return False\n"
        "DEBUG_TOOLBAR_CONFIG = {'SHOW_TOOLBAR_CALLBACK': lambda request: True}\n"
        "OTHER = {'SHOW_TOOLBAR_CALLBACK': lambda request: request.META['REMOTE_ADDR'] in IPS}\n"
    )
    assert found(code, "app.py") == {(6, "sec.debug"), (7, "sec.debug"), (11, "sec.debug")}


def test_werkzeug_debugger_console() -> None:
    code = (
        "from werkzeug.debug import DebuggedApplication\n"
        "app = DebuggedApplication(make_app(), evalex=True)\n"
        "quiet = DebuggedApplication(make_app(), evalex=False)\n"
    )
    assert found(code, "wsgi.py") == {(2, "sec.debug")}
