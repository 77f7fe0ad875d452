"""The webhooks pages over real HTTP (the test server): who may see and change them, and what an
administrator gets back for a good or a refused URL."""

from __future__ import annotations

from typing import Any

import pytest

from runs.models import WebhookDelivery, WebhookSubscription
from tests.webhooks.helpers import failed_run_delivery, subscribe
from tests.webhooks.http_client import Browser

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def personas(make_user) -> dict[str, Any]:
    return {
        "anonymous": None,
        "viewer": make_user("viewer"),
        "operator": make_user("operator"),
        "reviewer": make_user("reviewer"),
        "staff": make_user(None, is_staff=True),
    }


def test_only_staff_see_or_change_webhooks(live_server, personas, settings) -> None:
    settings.HARNESS_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    subscription = subscribe("http://127.0.0.1:9/hook")
    delivery = failed_run_delivery(subscription)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed")
    pages = ["/webhooks/", f"/webhooks/{subscription.pk}/"]
    posts = [
        f"/webhooks/{subscription.pk}/test/",
        f"/webhooks/{subscription.pk}/rotate/",
        f"/webhooks/{subscription.pk}/deliveries/{delivery.pk}/resend/",
        f"/webhooks/{subscription.pk}/delete/",
    ]
    salt = subscription.salt
    for name, user in personas.items():
        if name == "staff":
            continue
        browser = Browser(live_server.url, user)
        for path in pages:
            response = browser.get(path)
            if user is None:
                assert response.status_code == 302, (name, path)
                assert response.headers["Location"].startswith("/accounts/login/")
            else:
                assert response.status_code == 403, (name, path)
                assert "administrators" in response.text
        for path in posts:
            expected = 302 if user is None else 403
            assert browser.post(path).status_code == expected, (name, path)
    # Nothing changed: no test message, same secret, not re-sent, not deleted.
    subscription.refresh_from_db()
    assert subscription.salt == salt
    assert list(subscription.deliveries.values_list("status", flat=True)) == ["failed"]

    staff = Browser(live_server.url, personas["staff"])
    for path in pages:
        assert staff.get(path).status_code == 200, path
    assert "Webhooks" in staff.get("/").text  # the menu link, for staff only
    assert 'href="/webhooks/"' not in Browser(live_server.url, personas["viewer"]).get("/").text


def test_staff_add_a_webhook_and_see_its_secret_once(live_server, make_user, settings) -> None:
    settings.HARNESS_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    staff = Browser(live_server.url, make_user(None, is_staff=True))
    response = staff.post(
        "/webhooks/",
        {"url": "http://127.0.0.1:9/hook", "events": ["run.finished", "report.decided"]},
        form_page="/webhooks/",
    )
    assert response.status_code == 302
    subscription = WebhookSubscription.objects.get()
    assert subscription.events == ["run.finished", "report.decided"]
    assert response.headers["Location"] == f"/webhooks/{subscription.pk}/"

    first = staff.get(f"/webhooks/{subscription.pk}/").text
    assert subscription.secret() in first and "shown only this once" in first
    assert subscription.secret() not in staff.get(f"/webhooks/{subscription.pk}/").text
    # The secret is never stored: only the salt it is derived from.
    assert subscription.secret() not in str(WebhookSubscription.objects.values().get())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:8000/hook", "127.0.0.1 is a loopback address"),
        ("http://localhost:8000/hook", "localhost resolves to 127.0.0.1, which is a loopback"),
        ("http://10.0.0.5/hook", "10.0.0.5 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("ftp://example.com/hook", "Only http:// and https://"),
    ],
)
def test_a_refused_url_is_said_and_nothing_is_saved(live_server, make_user, url, message) -> None:
    staff = Browser(live_server.url, make_user(None, is_staff=True))
    response = staff.post(
        "/webhooks/", {"url": url, "events": ["run.finished"]}, form_page="/webhooks/"
    )
    assert response.status_code == 400
    assert message in response.text.replace("&#x27;", "'")
    assert not WebhookSubscription.objects.exists()


def test_staff_send_a_failed_delivery_again(live_server, make_user, settings) -> None:
    settings.HARNESS_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    subscription = subscribe("http://127.0.0.1:9/hook")
    delivery = failed_run_delivery(subscription)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=8)
    staff = Browser(live_server.url, make_user(None, is_staff=True))
    page = f"/webhooks/{subscription.pk}/"
    assert "Send again" in staff.get(page).text

    response = staff.post(f"{page}deliveries/{delivery.pk}/resend/", form_page=page)

    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    # A delivery already waiting is not queued twice.
    staff.post(f"{page}deliveries/{delivery.pk}/resend/", form_page=page)
    assert "already waiting" in staff.get(page).text
