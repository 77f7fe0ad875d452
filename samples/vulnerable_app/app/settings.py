"""Inventory demo settings. Planted: debug on, hard-coded credentials, weak sessions/hashers."""

import os

DEBUG = True

SECRET_KEY = "sk-test-FAKE-not-a-real-key-123"

ALLOWED_HOSTS = ["localhost", "127.0.0.1"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "inventory",
        "USER": "inventory",
        "password": "FAKE-db-pass-for-tests",
        "HOST": os.environ.get("DB_HOST", "localhost"),
    }
}

# Placeholders and environment lookups are fine and must not be reported.
EMAIL_PASSWORD = os.environ.get("EMAIL_PASSWORD", "")
SMTP_PASSWORD = "changeme"
PASSWORD_RESET_URL = "https://example.invalid/reset"

# AWS's documented example key id, not a real credential.
AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"

DEPLOY_KEY = """
-----BEGIN RSA PRIVATE KEY-----
FAKE-KEY-MATERIAL-FOR-ANALYZER-TESTS-ONLY
-----END RSA PRIVATE KEY-----
"""

# The CSRF middleware was dropped "to get the mobile app working".
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

# Sessions kept in a cookie signed with the SECRET_KEY above, pickled, and old accounts'
# MD5 hashes kept "for the migration": MD5 still hashes every new password.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_SERIALIZER = "django.contrib.sessions.serializers.PickleSerializer"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
DEBUG_TOOLBAR_CONFIG = {"SHOW_TOOLBAR_CALLBACK": lambda request: "debug" in request.GET}
