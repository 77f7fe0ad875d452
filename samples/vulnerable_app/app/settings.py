"""Settings for the inventory demo. Planted problems: debug on, hard-coded credentials."""

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
