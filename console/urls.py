from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from jobs.processes.metrics import metrics_view
from jobs.views import health

admin.site.site_header = "Jobs console — admin"
admin.site.index_title = "Jobs console administration"
admin.site.site_url = "/"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("jobs.api_urls")),
    path("", include("jobs.urls")),
]
