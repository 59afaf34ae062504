from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import api
from config.health import healthz

api_v1 = [
    path("", include("teams.urls")),
    path("", include("stratification.urls")),
    path("", include("courses.urls")),
    path("", include("notifications.urls")),
]


class SwaggerView(SpectacularSwaggerSplitView):
    # An HTML page: DRF's OPTIONS metadata would render it without a template (500).
    # The split view serves Swagger UI's initialiser as a script URL (?script), not
    # inline: the Content-Security-Policy allows no inline script (config/csp.py).
    http_method_names = ["get", "head"]


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    # The team's web app, at the site root ("/" is its worklist, or sign-in).
    path("", include("web.urls")),
]


def handler404(request, exception):  # noqa: ANN001, ANN201
    if request.path.startswith("/api/") or request.path == "/healthz":
        return api.json_not_found(request, exception)
    return defaults.page_not_found(request, exception)


def handler500(request):  # noqa: ANN001, ANN201
    if request.path.startswith("/api/"):
        return api.json_server_error(request)
    return defaults.server_error(request)


admin.site.site_header = "rezcourse administration"
admin.site.site_title = "rezcourse"
if settings.DEBUG:
    admin.site.index_title = "rezcourse (local demo)"
