from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

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
]


class SwaggerView(SpectacularSwaggerView):
    # An HTML page: DRF's OPTIONS metadata would render it without a template (500).
    http_method_names = ["get", "head"]


urlpatterns = [
    # No web app yet: a browser that opens the site lands on the API's documentation.
    path("", RedirectView.as_view(pattern_name="swagger-ui", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]

# Every path answers errors in the API's JSON shape (config.api.JsonNotFoundMiddleware
# does the same for the pages Django renders itself, e.g. with DEBUG=True).
handler404 = api.json_not_found
handler500 = api.json_server_error


admin.site.site_header = "rezcourse administration"
admin.site.site_title = "rezcourse"
if settings.DEBUG:
    admin.site.index_title = "rezcourse (local demo)"
