from django.urls import path
from rest_framework.routers import SimpleRouter

from courses import views

router = SimpleRouter()
router.register("patients", views.PatientViewSet, basename="patient")
router.register("relapses", views.RelapseViewSet, basename="relapse")
router.register("courses", views.CourseViewSet, basename="course")

LIST = {"get": "list", "post": "create"}
nested = [
    ("blocks", views.BlockViewSet, "course-blocks"),
    ("assessments", views.AssessmentViewSet, "course-assessments"),
    ("mrd", views.MrdViewSet, "course-mrd"),
    ("events", views.EventViewSet, "course-events"),
    ("steps", views.StepViewSet, "course-steps"),
]

urlpatterns = [
    *router.urls,
    *(
        path(f"courses/<int:course_pk>/{prefix}/", viewset.as_view(LIST), name=name)
        for prefix, viewset, name in nested
    ),
    path(
        "courses/<int:course_pk>/hsct-referral/",
        views.ReferralViewSet.as_view({"get": "retrieve", "put": "create", "patch": "create"}),
        name="course-hsct-referral",
    ),
    path(
        "courses/<int:course_pk>/steps/<int:pk>/",
        views.StepViewSet.as_view({"patch": "partial_update"}),
        name="course-step",
    ),
]
