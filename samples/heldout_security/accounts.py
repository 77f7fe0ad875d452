"""Account helpers: reset codes, API keys, password storage."""

import hashlib
import random
import secrets
import string

JWT_SECRET = "9f2b7c1e4d8a6f30b5e2c7d1a4f8e6b2"


def make_reset_code():
    return "".join(random.choices(string.digits, k=6))


def new_api_key():
    return secrets.token_hex(32)


def hash_password(password, salt):
    return hashlib.sha1((salt + password).encode()).hexdigest()


def cache_key(url):
    return hashlib.md5(url.encode(), usedforsecurity=False).hexdigest()


def retry_delay(attempt):
    return min(30, 2**attempt) + random.random()
