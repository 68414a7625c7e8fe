"""The fallback report poster against a local GitLab stand-in: URL, token header, body, errors."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }}.ci import post_report
from {{ cookiecutter.package_name }}.ci.gitlab import GitLab, GitLabError

from gitlab_standin import StandIn

NOTES = "/api/v4/projects/ml%2Fmodel/merge_requests/7/notes"
PNG = b"\x89PNG\r\n\x1a\nfake"


@pytest.fixture
def report(tmp_path):
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "roc.png").write_bytes(PNG)
    path = tmp_path / "report.md"
    path.write_text("# Model report\n\n| a | b |\n|---|---|\n\n![ROC](plots/roc.png)\n")
    return path


def test_posts_one_note_with_uploaded_images(report, monkeypatch, capsys):
    with StandIn() as api:
        api.routes[("GET", NOTES + "?sort=desc&per_page=100")] = (200, [{"id": 1, "body": "human"}])
        api.routes[("POST", "/api/v4/projects/ml%2Fmodel/uploads")] = (
            201,
            {"url": "/uploads/abc/roc.png", "markdown": "![roc.png](/uploads/abc/roc.png)"},
        )
        api.routes[("POST", NOTES)] = (201, {"id": 99})
        monkeypatch.setenv("CI_API_V4_URL", api.url)
        monkeypatch.setenv("REPO_TOKEN", "glpat-test-token")
        monkeypatch.delenv("GITLAB_TOKEN", raising=False)
        rc = post_report.main([str(report), "--project", "ml/model", "--mr", "7"])
    assert rc == 0, capsys.readouterr().err
    assert [r.method for r in api.requests] == ["GET", "POST", "POST"]
    upload, note = api.requests[1], api.requests[2]
    assert all(r.headers["private-token"] == "glpat-test-token" for r in api.requests)
    assert upload.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'filename="roc.png"' in upload.body and PNG in upload.body
    assert (note.method, note.path) == ("POST", NOTES)
    body = note.json()["body"]
    assert body.startswith(post_report.MARKER)
    assert "![ROC](/uploads/abc/roc.png)" in body and "plots/roc.png" not in body
    assert "| a | b |" in body
    assert "note 99" in capsys.readouterr().out


def test_a_rerun_edits_the_existing_report_note(report):
    with StandIn() as api:
        api.routes[("GET", NOTES + "?sort=desc&per_page=100")] = (
            200,
            [{"id": 5, "body": "lgtm"}, {"id": 4, "body": f"{post_report.MARKER}\nold report"}],
        )
        api.routes[("POST", "/api/v4/projects/ml%2Fmodel/uploads")] = (
            201,
            {"url": "/uploads/x/roc.png"},
        )
        api.routes[("PUT", NOTES + "/4")] = (200, {"id": 4})
        note = post_report.post_report(GitLab(api.url, "t"), "ml/model", "7", report)
    assert note == {"id": 4}
    assert [r.method for r in api.requests] == ["GET", "POST", "PUT"]


def test_unauthorized_fails_loudly_with_a_hint(report, monkeypatch, capsys):
    with StandIn() as api:
        api.routes[("GET", NOTES + "?sort=desc&per_page=100")] = (
            401,
            {"message": "401 Unauthorized"},
        )
        monkeypatch.setenv("CI_API_V4_URL", api.url)
        monkeypatch.setenv("REPO_TOKEN", "glpat-0ld-t0ken")
        rc = post_report.main([str(report), "--project", "ml/model", "--mr", "7"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "HTTP 401" in err and "REPO_TOKEN" in err and "api" in err
    assert "glpat-0ld-t0ken" not in err  # the token itself is never printed


def test_no_token_is_an_error_before_any_request(report, monkeypatch, capsys):
    with StandIn() as api:
        monkeypatch.setenv("CI_API_V4_URL", api.url)
        monkeypatch.delenv("REPO_TOKEN", raising=False)
        monkeypatch.delenv("GITLAB_TOKEN", raising=False)
        assert post_report.main([str(report), "--project", "1", "--mr", "2"]) == 1
    assert api.requests == []
    assert "REPO_TOKEN" in capsys.readouterr().err


def test_a_missing_image_is_an_error(tmp_path):
    report = tmp_path / "report.md"
    report.write_text("![gone](plots/gone.png)\n")
    with StandIn() as api:
        notes = "/api/v4/projects/1/merge_requests/2/notes?sort=desc&per_page=100"
        api.routes[("GET", notes)] = (200, [])
        with pytest.raises(FileNotFoundError, match=r"plots/gone\.png"):
            post_report.post_report(GitLab(api.url, "t"), "1", "2", report)


def test_errors_carry_the_status():
    error = GitLabError("POST", "http://x/api/v4/y", 403, "forbidden")
    assert error.status == 403 and "Developer role" in str(error)
