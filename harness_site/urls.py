from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from runs.api.main import urls as api_urls
from runs.views.health import healthz
from runs.views.metrics import metrics

# Named, not imported: Django resolves it when a view refuses.
handler403 = "runs.views.errors.permission_denied"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", api_urls()),
    path("", include("runs.urls")),
]
