"""Release hand-off: the kustomization edit, and the push + merge-request call against local
stand-ins (a bare git repo for the config repo, an HTTP server for the GitLab API)."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from {{ cookiecutter.package_name }}.ci import gitops
from {{ cookiecutter.package_name }}.ci.kustomize_image import BumpError, bump_text

from gitlab_standin import StandIn

DIGEST = "sha256:" + "ab" * 32
OVERLAY = """\
# Staging overlay
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: model-staging
resources:
  - ../../base
# Released image: the release job rewrites newTag.
images:
  - name: model            # the name used in the base
    newName: registry.example.com/ml/model
    newTag: "0.1.0"   # bumped by CI
  - name: sidecar
    newTag: 1.0.0
"""


def test_bump_changes_exactly_the_tag_and_keeps_comments():
    new = bump_text(OVERLAY, "v1.2.3", image="model")
    assert new == OVERLAY.replace('newTag: "0.1.0"', 'newTag: "v1.2.3"')
    data = yaml.safe_load(new)
    assert data["images"][0]["newTag"] == "v1.2.3" and data["images"][1]["newTag"] == "1.0.0"


def test_bump_adds_then_replaces_the_digest():
    once = bump_text(OVERLAY, "v1.2.3", DIGEST, image="registry.example.com/ml/model")
    lines = once.splitlines()
    at = lines.index('    newTag: "v1.2.3"   # bumped by CI')
    assert lines[at + 1] == f'    digest: "{DIGEST}"'
    other = "sha256:" + "cd" * 32
    twice = bump_text(once, "v1.2.4", other, image="model")
    assert yaml.safe_load(twice)["images"][0] == {
        "name": "model",
        "newName": "registry.example.com/ml/model",
        "newTag": "v1.2.4",
        "digest": other,
    }
    assert twice.count("digest:") == 1


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        (OVERLAY, {"tag": "v1", "image": None}, "2 images: entries"),
        (OVERLAY, {"tag": "v1", "image": "nope"}, "no images: entry"),
        (OVERLAY, {"tag": "bad tag!", "image": "model"}, "not a valid image tag"),
        (OVERLAY, {"tag": "v1", "digest": "sha256:short", "image": "model"}, "not a sha256 digest"),
        ("resources: [a]\n", {"tag": "v1"}, "no images: list"),
        ("images:\n  - name: model\n", {"tag": "v1"}, "no newTag"),
    ],
)
def test_bump_refuses(text, kwargs, message):
    with pytest.raises(BumpError, match=message):
        bump_text(text, **kwargs)


def _git(*args, cwd):
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def config_repo(tmp_path):
    """A bare 'config repo' with k8s/overlays/staging/kustomization.yaml on main."""
    work = tmp_path / "work"
    overlay = work / "k8s" / "overlays" / "staging"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(OVERLAY)
    _git("init", "-q", "--initial-branch=main", cwd=work)
    _git("add", ".", cwd=work)
    _git("commit", "-qm", "init", cwd=work)
    bare = tmp_path / "config.git"
    _git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    return bare


def release_args(api, bare, *extra):
    return [
        "release",
        "--env", "staging",
        "--tag", "v1.2.3",
        "--image", "model",
        "--digest", DIGEST,
        "--config-project", "ml/model-config",
        "--config-repo-url", bare.as_uri(),
        "--api-url", api.url,
        "--target-branch", "main",
        *extra,
    ]  # fmt: skip


MRS = "/api/v4/projects/ml%2Fmodel-config/merge_requests"


def test_release_pushes_a_branch_and_opens_a_merge_request(config_repo, capsys):
    env = {"REPO_TOKEN": "glpat-release", "CI_PIPELINE_URL": "https://gitlab.example.com/p/1"}
    with StandIn() as api:
        api.routes[("POST", MRS)] = (201, {"iid": 3, "web_url": "https://gitlab.example.com/mr/3"})
        rc = gitops.main(release_args(api, config_repo), env=env)
    assert rc == 0, capsys.readouterr().err
    shown = _git(
        "show", "release/staging-v1.2.3:k8s/overlays/staging/kustomization.yaml", cwd=config_repo
    )
    assert yaml.safe_load(shown)["images"][0]["newTag"] == "v1.2.3"
    assert yaml.safe_load(shown)["images"][0]["digest"] == DIGEST
    changed = _git("diff", "--stat", "main", "release/staging-v1.2.3", cwd=config_repo)
    assert "1 file changed" in changed
    (call,) = api.requests
    assert (call.method, call.path) == ("POST", MRS)
    assert call.headers["private-token"] == "glpat-release"
    body = call.json()
    assert body["source_branch"] == "release/staging-v1.2.3" and body["target_branch"] == "main"
    assert body["title"] == "Deploy v1.2.3 to staging" and body["remove_source_branch"] is True
    assert DIGEST in body["description"] and "https://gitlab.example.com/p/1" in body["description"]
    assert "https://gitlab.example.com/mr/3" in capsys.readouterr().out


def test_release_accepts_an_already_open_merge_request(config_repo, capsys):
    with StandIn() as api:
        api.routes[("POST", MRS)] = (
            409,
            {"message": ["Another open merge request already exists"]},
        )
        assert gitops.main(release_args(api, config_repo), env={"REPO_TOKEN": "t"}) == 0
    assert "already open" in capsys.readouterr().out


def test_release_unauthorized_fails_loudly(config_repo, capsys):
    with StandIn() as api:
        api.routes[("POST", MRS)] = (401, {"message": "401 Unauthorized"})
        rc = gitops.main(release_args(api, config_repo), env={"REPO_TOKEN": "glpat-bad"})
    err = capsys.readouterr().err
    assert rc == 1 and "HTTP 401" in err and "REPO_TOKEN" in err and "glpat-bad" not in err


def test_release_of_a_missing_overlay_fails_before_any_push(config_repo, capsys):
    with StandIn() as api:
        args = release_args(api, config_repo)
        args[args.index("staging")] = "qa"
        assert gitops.main(args, env={"REPO_TOKEN": "t"}) == 1
    assert api.requests == []
    assert "k8s/overlays/qa/kustomization.yaml does not exist" in capsys.readouterr().err
    assert "release/qa" not in _git("branch", "--list", cwd=config_repo)


def test_https_urls_carry_the_token_as_oauth2():
    url = gitops.authenticated_url("https://gl.example:8443/ml/config.git", "a/b")
    assert url == "https://oauth2:a%2Fb@gl.example:8443/ml/config.git"  # pragma: allowlist secret
    assert gitops.authenticated_url("file:///tmp/x.git", "t") == "file:///tmp/x.git"
