"""`dvc push` / `dvc pull` through the S3 remote, against moto's S3 server on 127.0.0.1.

The remote is configured by the very commands of `make dvc-remote` (read from the Makefile), in a
scratch DVC repository that uses this project's .dvc/config; only the endpoint URL is pointed at
the local moto server (in .dvc/config.local, as a developer would for a test endpoint).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from s3_support import REGION, aws_env, endpoint  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BUCKET = "{{ cookiecutter.project_slug }}-dev-dvc-123456789012"

pytestmark = pytest.mark.integration


def make_target_commands(target: str, bucket: str) -> list[list[str]]:
    """The recipe lines of a Makefile target, with $(RUN) and $(BUCKET) resolved."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    commands = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        if line.lstrip().startswith("@"):
            continue  # the usage guard
        command = line.strip().replace("$(RUN) ", "").replace("$(BUCKET)", bucket)
        assert "$(" not in command, command
        commands.append(shlex.split(command))
    return commands


def dvc(*args: str, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [str(BIN / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, f"dvc {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_push_and_pull_through_the_s3_remote(
    endpoint: str,  # noqa: F811 (the fixture imported from s3_support)
    aws_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})

    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    subprocess.run(["git", "init", "--quiet"], cwd=repo, check=True)
    for rel in (".dvc/config", ".dvc/.gitignore", ".dvcignore"):
        shutil.copy(REPO / rel, repo / rel)
    commands = make_target_commands("dvc-remote", BUCKET)
    assert [c[:3] for c in commands] == [["dvc", "remote", "add"], ["dvc", "remote", "modify"]]
    for command in commands:
        dvc(*command[1:], cwd=repo, env=aws_env)
    config = (repo / ".dvc" / "config").read_text()
    assert re.search(r"remote = storage", config) and f"url = s3://{BUCKET}/dvc" in config
    assert f"region = {REGION}" in config
    dvc("remote", "modify", "--local", "storage", "endpointurl", endpoint, cwd=repo, env=aws_env)

    data = repo / "data.csv"
    data.write_bytes(b"id,y\n" + b"".join(f"{i},{i % 2}\n".encode() for i in range(5000)))
    original = data.read_bytes()
    dvc("add", "data.csv", cwd=repo, env=aws_env)
    assert "1 file pushed" in dvc("push", cwd=repo, env=aws_env)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert keys and all(key.startswith("dvc/") for key in keys)

    data.unlink()
    shutil.rmtree(repo / ".dvc" / "cache")
    dvc("pull", cwd=repo, env=aws_env)
    assert data.read_bytes() == original
    assert "are in sync" in dvc("status", "--cloud", cwd=repo, env=aws_env)
