from django.urls import path
from rest_framework.routers import SimpleRouter

from notifications import views, views_dashboard

router = SimpleRouter()
router.register("alerts", views.AlertViewSet, basename="alert")
router.register("outbox", views.OutboundEmailViewSet, basename="outbox")
router.register(
    "notification-preferences",
    views.NotificationPreferenceViewSet,
    basename="notification-preference",
)

urlpatterns = [
    path("dashboard/worklist/", views_dashboard.WorklistView.as_view(), name="worklist"),
    path("dashboard/summary/", views_dashboard.SummaryView.as_view(), name="summary"),
    *router.urls,
]
