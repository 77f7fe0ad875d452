"""API-side rules (py_api): errors sent to clients, log injection, mass assignment, JWT
verification, SSRF through client objects, weak password hashing spellings, resource
exhaustion. Each class has a case that must be reported and a twin that must stay silent."""

from __future__ import annotations

from agents.analysis import analyze_code

FLASK = (
    "import logging, traceback, time\n"
    "from flask import Flask, request, jsonify\n"
    "log = logging.getLogger(__name__)\n"
    "app = Flask(__name__)\n"
)


def found(code: str, path: str = "api.py") -> set[tuple[int, str]]:
    return {(f.line_start, f.rule) for f in analyze_code(path, code, "security")}


def of(rule: str, code: str, path: str = "api.py") -> set[int]:
    return {line for line, r in found(code, path) if r == rule}


def test_exception_text_in_json_and_graphql_errors() -> None:
    code = FLASK + (
        "from graphql import GraphQLError\n"
        "def save():\n"
        "    try:\n"
        "        db.session.commit()\n"
        "    except Exception as e:\n"
        "        return jsonify({'error': str(e)}), 500\n"
        "def resolve_x(root, info, n):\n"
        "    try:\n"
        "        return load(n)\n"
        "    except Exception as exc:\n"
        "        raise GraphQLError(f'failed: {exc}')\n"
        "@app.errorhandler(500)\n"
        "def oops(error):\n"
        "    return jsonify({'trace': traceback.format_exc()}), 500\n"
    )
    assert of("sec.info_disclosure", code) == {10, 15, 18}


def test_specific_errors_and_generic_messages_are_not_disclosure() -> None:
    code = FLASK + (
        "def save():\n"
        "    try:\n"
        "        n = int(request.args['n'])\n"
        "    except ValueError as e:\n"
        "        return jsonify({'error': str(e)}), 400\n"
        "    try:\n"
        "        db.session.commit()\n"
        "    except Exception:\n"
        "        log.exception('commit failed')\n"
        "        return jsonify({'error': 'internal error'}), 500\n"
    )
    assert of("sec.info_disclosure", code) == set()


def test_request_data_in_log_messages() -> None:
    code = FLASK + (
        "def login():\n"
        "    log.info('login for ' + request.form['user'])\n"
        "    logging.warning('bad name %s', request.args.get('name'))\n"
        "    log.info('login for %r', request.form['user'])\n"
        "    log.info('login attempt')\n"
    )
    assert of("sec.log_injection", code) == {6, 7}
    [f] = [f for f in analyze_code("api.py", code, "security") if f.line_start == 6]
    assert f.cwe == 117


def test_mass_assignment_from_request_dicts() -> None:
    code = FLASK + (
        "def create():\n"
        "    user = User(**request.json)\n"
        "    Profile.objects.create(**request.POST.dict())\n"
        "    for k, v in request.get_json().items():\n"
        "        setattr(user, k, v)\n"
        "def safe():\n"
        "    data = request.get_json()\n"
        "    user = User(name=data['name'], email=data['email'])\n"
        "    for k, v in data.items():\n"
        "        if k in ('name', 'email'):\n"
        "            setattr(user, k, v)\n"
        "    Event(**DEFAULTS)\n"
    )
    assert of("sec.mass_assignment", code) == {6, 7, 9}


def test_model_serializer_with_every_field() -> None:
    code = (
        "from rest_framework import serializers\n"
        "class UserSerializer(serializers.ModelSerializer):\n"
        "    class Meta:\n"
        "        model = User\n"
        "        fields = '__all__'\n"
        "class Named(serializers.ModelSerializer):\n"
        "    class Meta:\n"
        "        model = User\n"
        "        fields = ['name']\n"
    )
    assert of("sec.mass_assignment", code, "serializers.py") == {5}


def test_jwt_without_verification_or_with_none() -> None:
    code = (
        "import jwt\n"
        "from jose import jwt as jose_jwt\n"
        "def claims(t):\n"
        "    a = jwt.decode(t, options={'verify_signature': False})\n"
        "    b = jwt.decode(t, verify=False)\n"
        "    c = jose_jwt.decode(t, KEY, algorithms=['HS256', 'none'])\n"
        "    return jwt.decode(t, KEY, algorithms=['HS256'])\n"
    )
    assert of("sec.jwt", code, "auth.py") == {4, 5, 6}


def test_ssrf_through_client_objects() -> None:
    code = FLASK + (
        "import requests, urllib3, pycurl\n"
        "s = requests.Session()\n"
        "def proxy():\n"
        "    url = request.args['url']\n"
        "    s.get(url, timeout=5)\n"
        "    urllib3.PoolManager().request('GET', url)\n"
        "    c = pycurl.Curl()\n"
        "    c.setopt(pycurl.URL, url)\n"
        "    s.get('https://api.example.com/' + url, timeout=5)\n"
        "    session.get(request.args['k'])\n"
    )
    assert of("sec.ssrf", code) == {9, 10, 12}


def test_weak_password_hashing_spellings() -> None:
    code = (
        "import crypt, hashlib\n"
        "from passlib.hash import md5_crypt, pbkdf2_sha256\n"
        "def store(pw, salt):\n"
        "    a = hashlib.pbkdf2_hmac('sha1', pw, salt, 1000)\n"
        "    b = crypt.crypt(pw, 'ab')\n"
        "    c = md5_crypt.hash(pw)\n"
        "    return hashlib.pbkdf2_hmac('sha256', pw, salt, 600000), pbkdf2_sha256.hash(pw)\n"
    )
    assert of("sec.weak_hash", code, "auth.py") == {4, 5, 6}


def test_request_controlled_sizes_without_a_bound() -> None:
    code = FLASK + (
        "def resize():\n"
        "    return '<br>'.join('#' * int(request.args['size']) for _ in range(3))\n"
        "def wait():\n"
        "    time.sleep(float(request.args['s']))\n"
        "def rows():\n"
        "    n = int(request.args.get('count', 10))\n"
        "    return Row.query.limit(n).all()\n"
        "def bounded():\n"
        "    n = min(int(request.args.get('count', 10)), 100)\n"
        "    time.sleep(1)\n"
        "    return [x for x in range(n)], Row.query.limit(n).all()\n"
        "def checked():\n"
        "    n = int(request.args['n'])\n"
        "    if n > 50:\n"
        "        abort(400)\n"
        "    return list(range(n))\n"
    )
    assert of("sec.dos", code) == {6, 8, 11}


def test_a_membership_test_is_not_a_bound_and_a_logged_url_is_not_injection() -> None:
    code = FLASK + (
        "def page():\n"
        "    params = request.args\n"
        "    if 'size' in params:\n"
        "        return '#' * int(params['size'])\n"
        "    log.error('aborted %s', request.url)\n"
    )
    assert found(code) == {(8, "sec.dos")}
