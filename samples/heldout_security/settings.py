"""Django settings for the share service."""

import os

DEBUG = os.environ.get("DEBUG") == "1"
SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
ALLOWED_HOSTS = ["*"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
]
EMAIL_HOST_PASSWORD = "Tr0ub4dor&3-mailer"
