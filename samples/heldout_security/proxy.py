"""Link preview and webhook relay."""

import urllib.request

import requests
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect

ALLOWED = {"example.com", "cdn.example.com"}


def preview(request):
    url = request.GET["url"]
    body = urllib.request.urlopen(url, timeout=5).read(2048)
    return JsonResponse({"head": body.decode(errors="replace")})


def relay(request):
    hook = request.POST.get("hook")
    requests.post(hook, json={"event": "ping"}, timeout=3)
    return JsonResponse({"sent": True})


def fixed_status(request):
    r = requests.get("https://status.example.com/api", timeout=3)
    return JsonResponse(r.json())


def after_login(request):
    nxt = request.GET.get("next", "/")
    return HttpResponseRedirect(nxt)


def home(request):
    return redirect("/dashboard/")
