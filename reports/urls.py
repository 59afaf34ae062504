from django.urls import path

from reports import views

urlpatterns = [
    path("dashboard/worklist/", views.WorklistView.as_view(), name="worklist"),
    path("dashboard/summary/", views.SummaryView.as_view(), name="summary"),
    path("dashboard/outcomes/", views.OutcomesView.as_view(), name="dashboard-outcomes"),
    path("courses/<int:pk>/timeline/", views.TimelineView.as_view(), name="course-timeline"),
]
