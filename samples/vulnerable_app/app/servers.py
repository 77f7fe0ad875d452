"""Entry points other than Flask: a bare http.server handler kept for old stock-lookup
clients, and the aiohttp app factory."""

import html
import sqlite3
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session.redis_storage import RedisStorage

DB = sqlite3.connect("inventory.db", check_same_thread=False)
PAGE = "<html><body>%s</body></html>"


class LegacyHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        name = query.get("name", [""])[0]
        try:
            if url.path == "/hello":
                body = "<h1>Hello %s</h1>" % name
            elif url.path == "/hello-safe":
                body = "<h1>Hello %s</h1>" % html.escape(name)
            elif url.path == "/note":
                DB.execute("INSERT INTO notes(text) VALUES (?)", (name,))
                body = "saved"
            else:
                body = "<p>%d notes</p>" % DB.execute("SELECT COUNT(*) FROM notes").fetchone()[0]
        except sqlite3.Error:
            body = traceback.format_exc()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Language", query.get("lang", ["en"])[0])
        request_id = query.get("id", [""])[0].replace("\r", "").replace("\n", "")
        self.send_header("X-Request-Id", request_id)
        self.end_headers()
        self.wfile.write((PAGE % body).encode())


def make_app(redis):
    app = web.Application(debug=True)
    aiohttp_jinja2.setup(app, loader=None, autoescape=False)
    storage = RedisStorage(redis, httponly=False)
    return app, storage


def make_app_safe(redis, debug_flag):
    app = web.Application(debug=debug_flag)
    aiohttp_jinja2.setup(app, loader=None)
    storage = RedisStorage(redis, httponly=True, secure=True)
    return app, storage
