from rest_framework.routers import SimpleRouter

from history import views

router = SimpleRouter()
router.register("history", views.HistoryViewSet, basename="history")

urlpatterns = router.urls
