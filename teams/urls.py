from django.urls import path
from rest_framework.routers import SimpleRouter

from teams import views

router = SimpleRouter()
router.register("teams", views.TeamViewSet, basename="team")
router.register("memberships", views.MembershipViewSet, basename="membership")

urlpatterns = [path("me/", views.MeView.as_view(), name="me"), *router.urls]
