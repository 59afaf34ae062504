"""Unknown URLs: the API's JSON 404 under /api/, the web app's page elsewhere, never
Django's debug page; ``/`` is the web app and ``/api/v1/`` lists the API's
collections."""

from __future__ import annotations

import pytest

NOT_FOUND = {"error": {"status": 404, "code": "not_found", "message": "Not found."}}


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/v1/nope/", "/api/nope", "/api/v1/courses/999999/"])
def test_an_unknown_api_url_is_the_json_404_whatever_the_debug_setting(
    client, admin_user, settings, debug, path
):
    # With DEBUG, Django's own page would list every URL pattern.
    settings.DEBUG = debug
    client.force_login(admin_user)
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/nope", "/nope/", "/admin/nope/", "/static/x.css"])
def test_an_unknown_page_is_the_web_apps_404_page_whatever_the_debug_setting(
    client, admin_user, settings, debug, path
):
    settings.DEBUG = debug
    client.force_login(admin_user)  # the admin's own 404 too, for a signed-in admin
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    # The web app's page, not Django's debug page listing the URL patterns.
    assert "<h1>Not found</h1>" in page
    assert "URLconf" not in page and "api/v1/" not in page
    # django-csp leaves DEBUG's 404s alone (the debug page needs inline styles).
    assert debug or "Content-Security-Policy" in response


def test_a_missing_trailing_slash_is_still_redirected(client):
    response = client.get("/api/v1/courses")
    assert (response.status_code, response["Location"]) == (301, "/api/v1/courses/")


def test_the_site_root_leads_a_browser_to_the_web_apps_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_api_root_lists_the_collections(client):
    response = client.get("/api/v1/")
    assert response.status_code == 200
    body = response.json()
    assert body["docs"] == "http://testserver/api/docs/"
    assert body["schema"] == "http://testserver/api/schema/"
    resources = body["resources"]
    for name in (
        "patients",
        "relapses",
        "courses",
        "alerts",
        "teams",
        "memberships",
        "me",
        "stratify",
        "dashboard/worklist",
        "dashboard/summary",
        "dashboard/outcomes",
    ):
        assert resources[name] == f"http://testserver/api/v1/{name}/"
    # Only collections: nothing that needs an id.
    assert not any("<" in url or "(?P" in url for url in resources.values())


@pytest.mark.django_db
def test_every_listed_collection_answers(api, clinician):
    client = api(clinician)
    resources = client.get("/api/v1/").json()["resources"]
    for name, url in resources.items():
        if name == "stratify":
            continue  # POST only
        assert client.get(url).status_code == 200, name


def test_drf_can_load_the_api_conventions_before_anything_else():
    # config.api is DRF's pagination and exception-handler module: DRF imports it
    # while rest_framework.generics is still loading, so it must not import anything
    # that needs generics (a view class with extend_schema did, in one import order).
    import subprocess
    import sys
    from pathlib import Path

    code = "import django; django.setup(); import rest_framework.generics; import config.urls"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent.parent,
        env={"DJANGO_SETTINGS_MODULE": "config.settings.test", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
