"""Flow and response rules of the security lens (py_taint / py_flows / py_http): each class
with a case that must be reported and a near twin that must not."""

from __future__ import annotations

from agents.analysis import analyze_code


def sec(code: str, path: str = "m.py") -> set[tuple[int, str]]:
    return {(f.line_start, f.rule) for f in analyze_code(path, code, "security")}


def rules(code: str, path: str = "m.py") -> set[str]:
    return {rule for _, rule in sec(code, path)}


HANDLER = (
    "import traceback, urllib.parse\n"
    "from http.server import BaseHTTPRequestHandler\n"
    "class H(BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)\n"
    "        v = q.get('v', [''])[0]\n"
)


# --- random ---------------------------------------------------------------------------------


def test_random_value_returned_by_a_public_function_is_low_severity() -> None:
    code = "import random\ndef new_order_ref():\n    return random.randint(1, 10**6)\n"
    [f] = analyze_code("m.py", code, "security")
    assert (f.rule, f.line_start, f.severity) == ("sec.weak_random", 3, "low")
    ref = "import random\ndef make_ref():\n    ref = random.random()\n    return str(ref)\n"
    assert sec(ref) == {(3, "sec.weak_random")}


def test_random_kept_inside_or_for_jitter_or_private_is_not_reported() -> None:
    code = (
        "import random\n"
        "def retry_delay(n):\n    return 2**n + random.random()\n"
        "def _pick(xs):\n    return random.choice(xs)\n"
        "def roll():\n    x = random.randint(1, 6)\n    print(x)\n"
    )
    assert sec(code) == set()


# --- SQL from a module-level template -------------------------------------------------------


def test_sql_from_module_level_template_formatted_then_executed() -> None:
    code = (
        "FIND = \"SELECT * FROM t WHERE n = '{}'\"\n"
        "def find(cur, n):\n    sql = FIND.format(n)\n    cur.execute(sql)\n"
        "def find2(cur, n):\n    cur.execute(FIND % n)\n"
    )
    assert sec(code) == {(4, "sec.sql"), (6, "sec.sql")}


def test_sql_template_with_constants_or_placeholders_is_not_reported() -> None:
    code = (
        'FIND = "SELECT * FROM t WHERE n = ?"\n'
        'TABLE = "SELECT * FROM {}"\n'
        "def find(cur, n):\n    cur.execute(FIND, (n,))\n    cur.execute(TABLE.format('t'))\n"
        'MSG = "Hello {}"\ndef greet(cur, n):\n    cur.execute(MSG.format(n))\n'
    )
    assert sec(code) == set()


# --- path traversal and SSRF from parameters ------------------------------------------------


def test_parameter_reaching_file_sinks_is_reported_at_low_severity() -> None:
    code = (
        "import io, tarfile, os\n"
        "def read_doc(name):\n    return open(os.path.join('/srv/docs', name)).read()\n"
        "def unpack(user_input):\n    return tarfile.open(user_input)\n"
        "def raw(data):\n    return io.open(data)\n"
    )
    found = analyze_code("m.py", code, "security")
    assert {(f.line_start, f.rule) for f in found} == {
        (3, "sec.path_traversal"),
        (5, "sec.path_traversal"),
        (7, "sec.path_traversal"),
    }
    assert {f.severity for f in found} == {"low"}


def test_parameter_file_sinks_not_reported_when_declared_checked_private_or_in_tests() -> None:
    code = (
        "import os\nBASE = '/srv/docs'\n"
        "def read_file(path):\n    return open(path).read()\n"
        "def _helper(name):\n    return open(name).read()\n"
        "def checked(name):\n"
        "    full = os.path.realpath(os.path.join(BASE, name))\n"
        "    if not full.startswith(BASE):\n        raise ValueError(name)\n"
        "    return open(full).read()\n"
        "def by_id(n):\n    return open('/srv/%d.txt' % int(n)).read()\n"
    )
    assert sec(code) == set()
    assert sec("def read_doc(name):\n    return open(name).read()\n", "test_docs.py") == set()


def test_request_data_into_file_sink_keeps_high_severity() -> None:
    code = HANDLER + "        return open(v).read()\n"
    [f] = [f for f in analyze_code("m.py", code, "security") if f.rule == "sec.path_traversal"]
    assert f.severity == "high" and f.line_start == 7


def test_ssrf_through_private_helpers_is_reported_at_the_call() -> None:
    code = (
        "from urllib.request import urlopen\nfrom http.client import HTTPConnection\n"
        "def _get(opener, arg):\n    return opener(arg)\n"
        "def _connect(host, cls):\n    c = cls(host)\n    return c\n"
        "def fetch(user_input):\n    return _get(urlopen, user_input)\n"
        "def connect(user_input):\n    return _connect(user_input, HTTPConnection)\n"
        "def fetch_fixed():\n    return _get(urlopen, 'https://example.com')\n"
        "def not_a_client(user_input):\n    return _get(print, user_input)\n"
    )
    assert sec(code) == {(9, "sec.ssrf"), (11, "sec.ssrf")}


def test_parameter_into_requests_reported_but_declared_url_is_not() -> None:
    code = (
        "import requests\n"
        "def lookup(host):\n    return requests.get('https://' + host + '/x', timeout=5)\n"
        "def get_json(url):\n    return requests.get(url, timeout=5).json()\n"
    )
    assert sec(code) == {(3, "sec.ssrf")}


# --- XPath and XXE --------------------------------------------------------------------------


def test_xpath_built_from_parameter_or_request() -> None:
    code = (
        "import lxml.etree\n"
        "TREE = lxml.etree.parse('users.xml')\nROOT = TREE.getroot()\n"
        "def by_name(name):\n    return TREE.xpath(\"//user[name='%s']\" % name)\n"
        "def by_path(expr):\n    return ROOT.findall(expr)\n"
        "def safe(name):\n    return TREE.xpath('//user[name=$n]', n=name)\n"
        "def text_find(s, sub):\n    return s.find(sub)\n"
    )
    assert sec(code) == {(5, "sec.xpath"), (7, "sec.xpath")}


def test_lxml_xxe_parser_options_and_default_parser_on_parameters() -> None:
    code = (
        "from lxml import etree\n"
        "SAFE = etree.XMLParser(resolve_entities=False, no_network=True)\n"
        "OPEN = etree.XMLParser(no_network=False)\n"
        "def parse(data):\n    return etree.fromstring(data)\n"
        "def parse_safe(data):\n    return etree.fromstring(data, SAFE)\n"
        "def parse_const():\n    return etree.fromstring('<a/>')\n"
    )
    assert sec(code) == {(3, "sec.xxe"), (5, "sec.xxe")}
    assert rules("from lxml import etree\np = etree.XMLParser(resolve_entities=True)\n") == {
        "sec.xxe"
    }


def test_elementtree_on_a_module_constant_is_not_reported() -> None:
    code = (
        "import xml.etree.ElementTree as ET\n"
        "USERS = '<users><u>a</u></users>'\n"
        "def names():\n    return [u.text for u in ET.fromstring(USERS).findall('u')]\n"
        "def inline():\n    return ET.fromstring('<a/>')\n"
        "def untrusted(data):\n    return ET.fromstring(data)\n"
    )
    assert sec(code) == {(8, "bandit.B314")}


# --- compile --------------------------------------------------------------------------------


def test_compile_of_non_constant_code() -> None:
    code = (
        "import re\n"
        "def build(code):\n    return compile(code, 'x', 'exec')\n"
        "def fixed():\n    return compile('1 + 1', 'x', 'eval')\n"
        "def pattern(p):\n    return re.compile(p)\n"
    )
    assert sec(code) == {(3, "sec.eval")}


# --- response rules -------------------------------------------------------------------------


def test_hand_built_html_from_request_data_is_xss_escaped_is_not() -> None:
    code = (
        HANDLER + "        if v:\n            body = '<b>%s</b>' % v\n"
        "        else:\n            body = '<b>%s</b>' % html.escape(v)\n"
        "        self.wfile.write(body.encode())\n"
    )
    assert ("sec.xss") in rules("import html\n" + code)
    assert sec("import html\n" + code) >= {(9, "sec.xss")}
    assert (11, "sec.xss") not in sec("import html\n" + code)
    flask = (
        "from flask import Flask, request, jsonify\napp = Flask(__name__)\n"
        "@app.route('/hi')\ndef hi():\n    return '<h1>%s</h1>' % request.args['n']\n"
        "@app.route('/api')\ndef api():\n    return jsonify(name=request.args['n'])\n"
    )
    assert sec(flask) == {(5, "sec.xss")}


def test_meta_refresh_built_from_request_is_an_open_redirect() -> None:
    code = (
        HANDLER + '        body = \'<meta http-equiv="refresh" content="0; url=%s">\' % v\n'
        "        self.wfile.write(body.encode())\n"
    )
    assert sec(code) == {(7, "sec.open_redirect")}


def test_header_injection_unless_crlf_stripped() -> None:
    code = (
        HANDLER + "        self.send_response(200)\n"
        "        self.send_header('Content-Language', v)\n"
        "        self.send_header('X-Id', v.replace('\\r', '').replace('\\n', ''))\n"
        "        self.send_header('Location', v)\n"
        "        self.send_header('X-Frame-Options', 'DENY')\n"
    )
    assert sec(code) == {(8, "sec.header_injection"), (10, "sec.open_redirect")}


def test_traceback_sent_to_client_but_logged_one_is_not() -> None:
    code = (
        HANDLER + "        try:\n            body = 'ok'\n"
        "        except ValueError:\n            body = traceback.format_exc()\n"
        "        self.wfile.write(body.encode())\n"
        "    def log(self):\n        try:\n            pass\n"
        "        except ValueError:\n            print(traceback.format_exc())\n"
    )
    assert sec(code) == {(10, "sec.info_disclosure")}


def test_exception_text_returned_by_a_view_is_low_severity_disclosure() -> None:
    code = (
        "from flask import Flask, jsonify\napp = Flask(__name__)\n"
        "@app.post('/x')\ndef x():\n    try:\n        return 'ok'\n"
        "    except ValueError as exc:\n        return jsonify(error=str(exc)), 400\n"
    )
    [f] = analyze_code("m.py", code, "security")
    assert (f.rule, f.line_start, f.severity) == ("sec.info_disclosure", 8, "low")


def test_clickjacking_when_framing_protection_is_switched_off() -> None:
    django = (
        "from django.views.decorators.clickjacking import xframe_options_exempt\n"
        "from django.views.decorators.clickjacking import xframe_options_deny\n"
        "@xframe_options_exempt\ndef a(request):\n    return 1\n"
        "@xframe_options_deny\ndef b(request):\n    return 1\n"
        "def c(request, resp):\n    resp.headers['X-Frame-Options'] = 'ALLOWALL'\n"
        "    del resp['X-Frame-Options']\n    return resp\n"
        "def d(request, resp):\n    resp.headers['X-Frame-Options'] = 'SAMEORIGIN'\n"
    )
    assert sec(django) == {
        (3, "sec.clickjacking"),
        (10, "sec.clickjacking"),
        (11, "sec.clickjacking"),
    }
    settings = "MIDDLEWARE = ['django.middleware.csrf.CsrfViewMiddleware']\n"
    assert sec(settings, "settings.py") == {(1, "sec.clickjacking")}
    framed = settings.replace("]", ", 'django.middleware.clickjacking.XFrameOptionsMiddleware']")
    assert sec(framed, "settings.py") == set()


def test_bare_http_server_serving_html_without_framing_header() -> None:
    code = (
        "from http.server import BaseHTTPRequestHandler\n"
        "class H(BaseHTTPRequestHandler):\n    def do_GET(self):\n"
        "        self.send_response(200)\n"
        "        self.wfile.write(b'<html><body>hi</body></html>')\n"
    )
    assert sec(code) == {(4, "sec.clickjacking")}
    protected = code.replace(
        "        self.wfile",
        "        self.send_header('X-Frame-Options', 'DENY')\n        self.wfile",
    )
    assert sec(protected) == set()


def test_write_on_get_is_csrf_read_on_get_and_write_on_post_are_not() -> None:
    code = (
        "from flask import Flask\napp = Flask(__name__)\n"
        "@app.route('/del')\ndef rm(db):\n    db.execute('DELETE FROM t WHERE id = 1')\n"
        "@app.route('/list')\ndef ls(db):\n    db.execute('SELECT * FROM t')\n"
        "@app.route('/add', methods=['POST'])\ndef add(db):\n"
        "    db.execute('INSERT INTO t VALUES (1)')\n"
    )
    assert sec(code) == {(5, "sec.csrf")}


# --- protections switched off by a keyword --------------------------------------------------


def test_debug_autoescape_and_cookie_flags_switched_off_by_keyword() -> None:
    code = (
        "import aiohttp_jinja2\nfrom aiohttp import web\n"
        "from aiohttp_session.redis_storage import RedisStorage\n"
        "app = web.Application(debug=True)\n"
        "aiohttp_jinja2.setup(app, loader=None, autoescape=False)\n"
        "store = RedisStorage(r, httponly=False)\n"
        "def view(request, resp):\n    resp.set_cookie('sid', 'v', secure=False)\n"
        "SESSION_COOKIE_HTTPONLY = False\n"
    )
    assert sec(code) == {
        (4, "sec.debug"),
        (5, "sec.xss"),
        (6, "sec.cookie_flags"),
        (8, "sec.cookie_flags"),
        (9, "sec.cookie_flags"),
    }


def test_protections_left_on_or_driven_by_config_are_not_reported() -> None:
    code = (
        "import aiohttp_jinja2\nfrom aiohttp import web\n"
        "from aiohttp_session.redis_storage import RedisStorage\n"
        "app = web.Application(debug=DEBUG)\n"
        "aiohttp_jinja2.setup(app, loader=None, autoescape=True)\n"
        "store = RedisStorage(r, httponly=True, secure=True)\n"
        "def view(request, resp):\n    resp.set_cookie('sid', 'v', secure=True, httponly=True)\n"
        "SESSION_COOKIE_HTTPONLY = True\nCSRF_COOKIE_HTTPONLY = False\n"
    )
    assert sec(code) == set()


def test_caller_values_do_not_flow_through_object_fields_or_operator_commands() -> None:
    code = (
        "import os\n"
        "def remove_previous(migration):\n    os.remove(migration.path)\n"
        "def write_po(locale, msgs):\n    pofile = os.path.join('/srv', locale + '.po')\n"
        "    open(pofile, 'w').write(msgs)\n"
    )
    assert sec(code) == {(6, "sec.path_traversal")}
    assert sec(code, "app/management/commands/makepo.py") == set()


def test_traceback_shown_only_in_debug_mode_is_not_reported() -> None:
    code = (
        "import traceback\nfrom django.http import HttpResponse\nfrom django.conf import settings\n"
        "def view(request):\n    try:\n        return HttpResponse('ok')\n"
        "    except ValueError:\n"
        "        return HttpResponse(traceback.format_exc() if settings.DEBUG else 'error')\n"
    )
    assert sec(code) == set()
