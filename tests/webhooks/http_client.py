"""Real HTTP requests to the test server, as a persona: the session cookie of a signed-in user
(or none), and the CSRF token a browser would send with a form."""

from __future__ import annotations

import re

import requests
from django.contrib.auth.models import User
from django.test import Client


class Browser:
    def __init__(self, base_url: str, user: User | None) -> None:
        self.base = base_url
        self.http = requests.Session()
        if user is not None:
            client = Client()
            client.force_login(user)
            self.http.cookies.set("sessionid", client.cookies["sessionid"].value)

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return self.http.get(self.base + path, allow_redirects=False, timeout=30, **kwargs)  # type: ignore[arg-type]

    def post(
        self, path: str, data: dict | None = None, form_page: str | None = None
    ) -> requests.Response:
        """POST as the page's form would: with the CSRF token of ``form_page`` (or of the
        login page, which any visitor may load)."""
        page = self.http.get(self.base + (form_page or "/accounts/login/"), timeout=30)
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        token = found.group(1) if found else ""
        return self.http.post(
            self.base + path,
            data={**(data or {}), "csrfmiddlewaretoken": token},
            allow_redirects=False,
            timeout=30,
        )
