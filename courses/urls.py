from django.urls import path
from rest_framework.routers import SimpleRouter

from courses import views

router = SimpleRouter()
router.register("patients", views.PatientViewSet, basename="patient")
router.register("relapses", views.RelapseViewSet, basename="relapse")
router.register("courses", views.CourseViewSet, basename="course")
router.register(
    "stratification-decisions",
    views.StratificationDecisionViewSet,
    basename="stratification-decision",
)

LIST = {"get": "list", "post": "create"}
nested = [
    ("blocks", views.BlockViewSet, "course-blocks"),
    ("assessments", views.AssessmentViewSet, "course-assessments"),
    ("mrd", views.MrdViewSet, "course-mrd"),
    ("events", views.EventViewSet, "course-events"),
    ("steps", views.StepViewSet, "course-steps"),
]

records = [(prefix, viewset, name) for prefix, viewset, name in nested if prefix != "steps"]

urlpatterns = [
    *router.urls,
    *(
        path(f"courses/<int:course_pk>/{prefix}/", viewset.as_view(LIST), name=name)
        for prefix, viewset, name in nested
    ),
    # One record: read it, amend it (PATCH), void it (POST .../void/). Never DELETE.
    *(
        path(
            f"courses/<int:course_pk>/{prefix}/<int:pk>/",
            viewset.as_view({"get": "retrieve", "patch": "partial_update"}),
            name=f"{name}-detail",
        )
        for prefix, viewset, name in records
    ),
    *(
        path(
            f"courses/<int:course_pk>/{prefix}/<int:pk>/void/",
            viewset.as_view({"post": "void"}),
            name=f"{name}-void",
        )
        for prefix, viewset, name in records
    ),
    path(
        "courses/<int:course_pk>/hsct-referral/",
        views.ReferralViewSet.as_view({"get": "retrieve", "put": "create", "patch": "create"}),
        name="course-hsct-referral",
    ),
    path(
        "courses/<int:course_pk>/hsct-referral/void/",
        views.ReferralViewSet.as_view({"post": "void"}),
        name="course-hsct-referral-void",
    ),
    path(
        "courses/<int:course_pk>/steps/<int:pk>/",
        views.StepViewSet.as_view({"patch": "partial_update"}),
        name="course-step",
    ),
]
