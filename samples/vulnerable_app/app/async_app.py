"""aiohttp entry point of the inventory demo."""

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session.redis_storage import RedisStorage


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
