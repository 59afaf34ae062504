"""The web app's URLs: the team's pages at the site root."""

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from web.views import calendar, course, outcomes, records, register, worklist

app_name = "web"

auth = [
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="web/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password-reset/",
        auth_views.PasswordResetView.as_view(
            template_name="web/password_reset.html",
            email_template_name="web/email/password_reset.txt",
            subject_template_name="web/email/password_reset_subject.txt",
            success_url=reverse_lazy("web:password-reset-done"),
        ),
        name="password-reset",
    ),
    path(
        "accounts/password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="web/password_reset_done.html"),
        name="password-reset-done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="web/password_reset_confirm.html",
            success_url=reverse_lazy("web:password-reset-complete"),
        ),
        name="password-reset-confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="web/password_reset_complete.html"
        ),
        name="password-reset-complete",
    ),
]

urlpatterns = [
    *auth,
    path("", worklist.worklist, name="worklist"),
    path("worklist.csv", worklist.worklist_csv, name="worklist-csv"),
    path("courses/<int:pk>/", course.course_page, name="course"),
    path("courses/<int:pk>/confirm/", course.confirm_stratification, name="course-confirm"),
    path("courses/<int:pk>/restratify/", course.restratify, name="course-restratify"),
    path("courses/<int:pk>/hsct/", course.confirm_hsct, name="course-hsct"),
    path("courses/<int:pk>/move/", course.move, name="course-move"),
    path("courses/<int:pk>/record/<slug:kind>/", records.record, name="record"),
    path(
        "courses/<int:pk>/records/<slug:kind>/<int:record_pk>/amend/",
        records.record_amend,
        name="record-amend",
    ),
    path(
        "courses/<int:pk>/records/<slug:kind>/<int:record_pk>/void/",
        records.record_void,
        name="record-void",
    ),
    path("courses/<int:pk>/steps/<int:step_pk>/", records.step, name="step"),
    path("alerts/<int:pk>/<slug:action>/", course.alert_action, name="alert-action"),
    path("patients/new/", register.patient_new, name="patient-new"),
    path("patients/<int:pk>/relapses/new/", register.relapse_new, name="relapse-new"),
    path("relapses/<int:pk>/course/", register.course_new, name="course-new"),
    path("calendar/", calendar.calendar, name="calendar"),
    path("calendar/feed/", calendar.feed_manage, name="calendar-feed-manage"),
    path("calendar/feed/<str:token>.ics", calendar.feed, name="calendar-feed"),
    path("outcomes/", outcomes.outcomes, name="outcomes"),
    path("outcomes/efs.png", outcomes.outcomes_plot, name="outcomes-plot"),
]
