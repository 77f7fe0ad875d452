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
