"""Webhook subscriptions (administrators only): list and add, edit, send a test, rotate the
secret, delete, and send a delivery again. What the pages show is ``runs.pages.webhooks``;
every change is ``runs.actions.webhooks``. POST, then redirect."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from runs.access import AuthenticatedHttpRequest, require_staff
from runs.actions import webhooks
from runs.forms.webhooks import SubscriptionForm
from runs.models import WebhookDelivery, WebhookSubscription
from runs.pages.webhooks import subscription_context, subscriptions_context

# The session key holding a secret until the page after the redirect shows it (once).
_SECRET_SHOWN = "webhook-secret-once"  # noqa: S105 (a session key)


def _subscription(request: AuthenticatedHttpRequest, subscription_id: int) -> WebhookSubscription:
    """A subscription, for staff only (404 when there is no such subscription)."""
    require_staff(request.user)
    return get_object_or_404(WebhookSubscription, pk=subscription_id)


@require_http_methods(["GET", "POST"])
def subscriptions(request: AuthenticatedHttpRequest) -> HttpResponse:
    require_staff(request.user)
    form = SubscriptionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            subscription, secret = webhooks.create_subscription(
                request.user, data["url"], data["events"], data["description"]
            )
        except webhooks.WebhookRefused as exc:
            form.add_error("url", str(exc))
        else:
            request.session[_SECRET_SHOWN] = [subscription.pk, secret]
            messages.success(request, f"Webhook {subscription.pk} added.")
            return redirect("runs:webhook", subscription.pk)
    status = 400 if request.method == "POST" else 200
    context = {**subscriptions_context(), "form": form}
    return render(request, "runs/webhooks.html", context, status=status)


@require_http_methods(["GET", "POST"])
def subscription(request: AuthenticatedHttpRequest, subscription_id: int) -> HttpResponse:
    sub = _subscription(request, subscription_id)
    initial = {"url": sub.url, "events": sub.events, "description": sub.description}
    form = SubscriptionForm(request.POST or None, initial={**initial, "active": sub.active})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            webhooks.update_subscription(
                sub, data["url"], data["events"], data["description"], data["active"]
            )
        except webhooks.WebhookRefused as exc:
            form.add_error("url", str(exc))
        else:
            messages.success(request, "Webhook saved.")
            return redirect("runs:webhook", sub.pk)
    shown = request.session.pop(_SECRET_SHOWN, None)
    secret = shown[1] if shown and shown[0] == sub.pk else None
    context = {**subscription_context(sub), "form": form, "secret": secret}
    status = 400 if request.method == "POST" else 200
    return render(request, "runs/webhook.html", context, status=status)


@require_POST
def send_test(request: AuthenticatedHttpRequest, subscription_id: int) -> HttpResponse:
    sub = _subscription(request, subscription_id)
    webhooks.send_test(sub, request.user)
    messages.success(request, "A test message is on its way; its delivery is listed below.")
    return redirect("runs:webhook", sub.pk)


@require_POST
def rotate(request: AuthenticatedHttpRequest, subscription_id: int) -> HttpResponse:
    sub = _subscription(request, subscription_id)
    request.session[_SECRET_SHOWN] = [sub.pk, webhooks.rotate_secret(sub)]
    messages.success(request, "New secret made: the old one no longer verifies.")
    return redirect("runs:webhook", sub.pk)


@require_POST
def delete(request: AuthenticatedHttpRequest, subscription_id: int) -> HttpResponse:
    sub = _subscription(request, subscription_id)
    webhooks.delete_subscription(sub)
    messages.success(request, f"Webhook {subscription_id} deleted, with its deliveries.")
    return redirect("runs:webhooks")


@require_POST
def resend(
    request: AuthenticatedHttpRequest, subscription_id: int, delivery_id: int
) -> HttpResponse:
    require_staff(request.user)
    delivery = get_object_or_404(WebhookDelivery, pk=delivery_id, subscription_id=subscription_id)
    if webhooks.resend(delivery):
        messages.success(request, f"Delivery {delivery.pk} is being sent again.")
    else:
        messages.error(request, f"Delivery {delivery.pk} is already waiting to be sent.")
    return redirect("runs:webhook", subscription_id)
