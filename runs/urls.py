from django.urls import path

from runs.views import runs

app_name = "runs"

urlpatterns = [
    path("", runs.run_list, name="list"),
    path("runs/<int:run_id>/", runs.run_detail, name="detail"),
]
