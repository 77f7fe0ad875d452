"""A user's API tokens: make one (its secret shown on this response only, never again, never
stored), revoke one. Only one's own tokens; an admin makes tokens for others with
``manage.py create_api_token``."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from runs.access import AuthenticatedHttpRequest
from runs.actions.tokens import TokenRefused, create_token, revoke_token
from runs.forms.tokens import TokenForm
from runs.models import ApiToken
from runs.pages.tokens import tokens_context


@require_http_methods(["GET", "POST"])
def tokens(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    secret = ""
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                token, secret = create_token(
                    request.user,
                    form.cleaned_data["name"],
                    form.cleaned_data["scopes"],
                    expires_at=form.expires_at(),
                )
            except TokenRefused as exc:
                form.add_error(None, str(exc))
            else:
                status = 201
                form = TokenForm()
    context = {**tokens_context(request.user), "form": form, "secret": secret}
    if secret:
        context["created"] = token
    response = render(request, "runs/tokens.html", context, status=status)
    # The one response that carries a secret: kept out of every cache and the back button's.
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def revoke(request: AuthenticatedHttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    if revoke_token(token):
        messages.success(request, f"Token {token.name!r} ({token.prefix}…) revoked.")
    else:
        messages.error(request, f"Token {token.name!r} was already revoked.")
    return redirect("runs:tokens")
