"""Admin export views (Django). Planted: CSRF exemption, mark_safe on user data, open redirect,
a path from the query string."""

from django.http import FileResponse, HttpResponseRedirect
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def export(request):
    name = request.GET.get("name", "report.csv")
    return FileResponse(open("/srv/exports/" + name, "rb"))


def greeting(request):
    return mark_safe("<h1>Hi " + request.user.first_name + "</h1>")


def greeting_safe(request):
    return format_html("<h1>Hi {}</h1>", request.user.first_name)


def back(request):
    return HttpResponseRedirect(request.POST["return_to"])


# --- views partner sites embed, and a search page ---
from django.http import HttpResponse  # noqa: E402
from django.shortcuts import render  # noqa: E402
from django.views.decorators.clickjacking import (  # noqa: E402
    xframe_options_exempt,
    xframe_options_sameorigin,
)


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
