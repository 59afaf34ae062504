"""The Content-Security-Policy middleware: django-csp's, with one exception.

The web app and the admin run under the strict policy of the settings (scripts and
styles from our own static files only). The API's HTML pages — Swagger UI at
/api/docs/ and DRF's browsable API — come from third-party templates that carry inline
style blocks and attributes; there, and only there, inline *styles* are allowed.
Inline scripts are allowed nowhere (Swagger UI loads its initialiser as a script URL:
config.urls.SwaggerView).
"""

from __future__ import annotations

from csp.constants import UNSAFE_INLINE
from csp.middleware import CSPMiddleware as BaseCSPMiddleware
from csp.middleware import PolicyParts
from django.http import HttpRequest, HttpResponseBase

API_HTML_PREFIX = "/api/"


class CSPMiddleware(BaseCSPMiddleware):
    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if request.path_info.startswith(API_HTML_PREFIX):
            parts.update = {**(parts.update or {}), "style-src": [UNSAFE_INLINE]}
        return parts
