"""``GET /api/v1/``: the index of the API's collections.

A module of its own, not config/api.py: that one is DRF's pagination and exception
handler module, imported while DRF itself loads, and a view class here resolves the
schema class at import time (a circular import if it ran that early).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver, reverse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


def _collections(patterns: list[Any]) -> Iterator[str]:
    """Names of the routes that take no argument: the API's collections and actions
    on the requester (me, stratify), read from the URLconf so the index cannot drift."""
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _collections(entry.url_patterns)
        elif isinstance(entry, URLPattern) and entry.name and not entry.pattern.regex.groups:
            yield entry.name


class ApiRootView(APIView):
    """``GET /api/v1/``: where the API's collections are, and its documentation."""

    permission_classes = [AllowAny]
    api_prefix = "api/v1/"

    @extend_schema(
        summary="The API's collections",
        responses=inline_serializer(
            "ApiRoot",
            {
                "name": serializers.CharField(),
                "version": serializers.CharField(),
                "docs": serializers.URLField(),
                "schema": serializers.URLField(),
                "resources": serializers.DictField(child=serializers.URLField()),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        [api] = [
            r
            for r in get_resolver().url_patterns
            if isinstance(r, URLResolver) and str(r.pattern) == self.api_prefix
        ]
        root = reverse("api-root")
        resources = {}
        for name in _collections(api.url_patterns):
            path = reverse(name)
            if path != root:
                resources[path.removeprefix(root).strip("/")] = request.build_absolute_uri(path)
        return Response(
            {
                "name": "rezcourse API",
                "version": "v1",
                "docs": request.build_absolute_uri(reverse("swagger-ui")),
                "schema": request.build_absolute_uri(reverse("schema")),
                "resources": dict(sorted(resources.items())),
            }
        )
