from django.urls import path

from stratification.views import StratifyView

urlpatterns = [
    path("stratify/", StratifyView.as_view(), name="stratify"),
]
