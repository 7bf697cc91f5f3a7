"""A worker process serves no pages: an empty URL configuration."""

from __future__ import annotations

urlpatterns: list[object] = []
