from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import api
from config.api_root import ApiRootView
from config.health import healthz

api_v1 = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("", include("teams.urls")),
    path("", include("stratification.urls")),
    path("", include("courses.urls")),
    path("", include("notifications.urls")),
    path("", include("reports.urls")),
    path("", include("history.urls")),
]


class SwaggerView(SpectacularSwaggerSplitView):
    # An HTML page: DRF's OPTIONS metadata would render it without a template (500).
    # The split view serves Swagger UI's initialiser as a script URL (?script), not
    # inline: the Content-Security-Policy allows no inline script (config/csp.py).
    http_method_names = ["get", "head"]


urlpatterns = [
    # No web app yet: a browser that opens the site lands on the API's documentation.
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    # The team's web app, at the site root ("/" is its worklist, or sign-in).
    path("", include("web.urls")),
]

# The API (and /healthz) answers errors in its JSON shape; the web app's pages answer
# with its own error pages (web/templates/404.html, 500.html). config.api.NotFoundMiddleware
# does the same for the 404s Django renders itself (the debug page under DEBUG=True).
handler404 = api.not_found
handler500 = api.server_error


admin.site.site_header = "rezcourse administration"
admin.site.site_title = "rezcourse"
if settings.DEBUG:
    admin.site.index_title = "rezcourse (local demo)"
