"""The product's own 404 page for a missing run, whatever DEBUG says."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from runs.access import RunNotFound


class RunNotFoundPage:
    """Under DEBUG, Django answers every ``Http404`` with its technical page (the URL patterns,
    a hint about DEBUG). A run that does not exist, or that the user may not see, is not a
    developer's mistake but an old link or a deleted run: it gets the page users get."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, RunNotFound):
            return render(request, "404.html", {"exception": str(exception)}, status=404)
        return None
