"""Views that partner sites embed, and a search page."""

from django.http import HttpResponse
from django.shortcuts import render
from django.utils.html import format_html
from django.views.decorators.clickjacking import xframe_options_exempt, xframe_options_sameorigin


@xframe_options_exempt
def partner_widget(request):
    return render(request, "widget.html")


@xframe_options_sameorigin
def own_widget(request):
    return render(request, "widget.html")


def legacy_widget(request):
    response = render(request, "widget.html")
    response.headers["X-Frame-Options"] = "ALLOWALL"
    return response


def search(request):
    q = request.GET.get("q", "")
    return HttpResponse("<p>No results for " + q + "</p>")


def search_safe(request):
    q = request.GET.get("q", "")
    return HttpResponse(format_html("<p>No results for {}</p>", q))
