"""ASGI entry point: Django for HTTP, Channels for websockets (signed-in users, same origin:
scheme, host and port, see ``harness_site.origins``)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "harness_site.settings")
# Build the Django app first: it sets up the app registry that the consumers' imports need.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from harness_site.origins import OriginValidator  # noqa: E402
from harness_site.telemetry import setup_telemetry  # noqa: E402
from runs.routing import websocket_urlpatterns  # noqa: E402

# Before the first request, not at the first span: with HARNESS_OTEL_CELERY on, a publish from a
# request (an operator's retry) must already carry the run's trace, or its task starts its own.
setup_telemetry("web")

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
