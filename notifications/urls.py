from rest_framework.routers import SimpleRouter

from notifications import views

router = SimpleRouter()
router.register("alerts", views.AlertViewSet, basename="alert")
router.register("outbox", views.OutboundEmailViewSet, basename="outbox")
router.register(
    "notification-preferences",
    views.NotificationPreferenceViewSet,
    basename="notification-preference",
)

urlpatterns = router.urls
