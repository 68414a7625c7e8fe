"""What a GitLab project gives its pipelines, on this machine, for the day-one journey.

- ``Runner``: gitlab-ci-local with the shell executor, one pipeline per call (jobs in stage and
  ``needs`` order, artifacts and dotenv reports passed by ``needs`` inside the call);
- ``Registry``: a real OCI distribution registry (Debian's ``docker-registry``) on 127.0.0.1;
- ``load_standin``: the generated project's own recording GitLab REST API stand-in;
- ``step``: prints each step of a long test with its duration.

Nothing here re-implements a job: the jobs are the generated project's, run as written.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

GITLAB_CI_LOCAL = os.environ.get("GITLAB_CI_LOCAL", "gitlab-ci-local")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def step(title: str) -> Iterator[None]:
    """``== title`` before, ``   ok (12.3 s)`` after: the test's output reads as its story."""
    print(f"\n== {title}", flush=True)
    started = time.monotonic()
    yield
    print(f"   ok ({time.monotonic() - started:.1f} s)", flush=True)


def load_standin(project: Path) -> ModuleType:
    """The generated ``tests/gitlab_standin.py`` (its ``StandIn`` records every API call)."""
    path = project / "tests" / "gitlab_standin.py"
    spec = importlib.util.spec_from_file_location("generated_gitlab_standin", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module's annotations through it
    spec.loader.exec_module(module)
    return module


class Registry:
    """``docker-registry serve`` on 127.0.0.1 with its storage in ``root``; stopped by its PID."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> Registry:
        executable = shutil.which("docker-registry")
        assert executable, "docker-registry is missing (Debian: apt-get install docker-registry)"
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n"
            f"http:\n  addr: {self.host}\n"
        )
        log = (self.root / "registry.log").open("wb")
        self._proc = subprocess.Popen(
            [executable, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 20
        while True:
            assert self._proc.poll() is None, (self.root / "registry.log").read_text()
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, "docker-registry did not answer /v2/ in 20 s"
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def tags(self, repository: str) -> set[str]:
        try:
            with urllib.request.urlopen(
                f"http://{self.host}/v2/{repository}/tags/list", timeout=10
            ) as r:
                return set(json.loads(r.read())["tags"] or [])
        except urllib.error.HTTPError as error:
            if error.code == 404:  # no such repository: nothing was pushed
                return set()
            raise

    def digest(self, repository: str, reference: str) -> str:
        """The manifest digest the registry serves for a tag (what a cluster would pull)."""
        request = urllib.request.Request(
            f"http://{self.host}/v2/{repository}/manifests/{reference}",
            method="HEAD",
            headers={
                "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                "application/vnd.oci.image.manifest.v1+json"
            },
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.headers["Docker-Content-Digest"]


class Runner:
    """gitlab-ci-local on one checkout: the shell executor, artifacts isolated per job.

    ``variables`` hold what the GitLab project would provide (API URL, registry, tokens) and the
    few settings that point jobs at this machine's caches; each call adds the pipeline's own
    (source, branch or tag).
    """

    def __init__(self, checkout: Path, env: dict[str, str], variables: dict[str, str]) -> None:
        self.checkout = checkout
        self.env = env
        self.variables = variables

    def _command(self, variables: dict[str, str], unset: tuple[str, ...]) -> list[str]:
        cmd = [GITLAB_CI_LOCAL, "--force-shell-executor", "--shell-isolation", "--no-color"]
        # Artifacts stay in .gitlab-ci-local/artifacts/<job>: the developer's checkout stays as
        # committed, and a job only sees what its `needs` bring.
        cmd.append("--no-artifacts-to-source")
        for name, value in {**self.variables, **variables}.items():
            cmd += ["--variable", f"{name}={value}"]
        for name in unset:
            cmd += ["--unset-variable", name]
        return cmd

    def jobs(self, variables: dict[str, str], unset: tuple[str, ...] = ()) -> dict[str, str]:
        """The pipeline these variables make: ``{job: when}`` without the ``when: never`` jobs."""
        proc = subprocess.run(
            [*self._command(variables, unset), "--list-json"],
            cwd=self.checkout, env=self.env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        listed = json.loads(proc.stdout[proc.stdout.index("[") :])
        return {j["name"]: j["when"] for j in listed if j["when"] != "never"}

    def run(
        self,
        jobs: list[str],
        variables: dict[str, str],
        unset: tuple[str, ...] = (),
        manual: tuple[str, ...] = (),
        timeout: int = 1800,
    ) -> str:
        """One pipeline of exactly ``jobs`` (a fresh artifact store, the caches kept)."""
        shutil.rmtree(self.checkout / ".gitlab-ci-local" / "artifacts", ignore_errors=True)
        cmd = self._command(variables, unset)
        for job in manual:
            cmd += ["--manual", job]
        proc = subprocess.run(
            [*cmd, *jobs], cwd=self.checkout, env=self.env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        out = proc.stdout
        # gitlab-ci-local ends with one " PASS  <job>" / " FAIL  <job>" line per job.
        passed = {line.split()[1] for line in out.splitlines() if line.startswith(" PASS ")}
        failed = [j for j in jobs if j not in passed]
        assert proc.returncode == 0 and not failed, (
            f"gitlab-ci-local: {failed or 'the pipeline'} failed (exit {proc.returncode})\n"
            f"--- stdout ---\n{out[-12000:]}\n--- stderr ---\n{proc.stderr[-3000:]}"
        )
        print(f"   PASS {' · '.join(jobs)}", flush=True)
        return out

    def fails(self, jobs: list[str], variables: dict[str, str], unset: tuple[str, ...] = ()) -> str:
        """One pipeline of ``jobs`` that must fail; its output (to check why)."""
        shutil.rmtree(self.checkout / ".gitlab-ci-local" / "artifacts", ignore_errors=True)
        proc = subprocess.run(
            [*self._command(variables, unset), *jobs], cwd=self.checkout, env=self.env,
            capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        assert proc.returncode != 0, f"the pipeline passed:\n{proc.stdout[-6000:]}"
        print(f"   FAIL, as it must: {' · '.join(jobs)}", flush=True)
        return proc.stdout

    def artifact(self, job: str, path: str) -> Path:
        """A file a job exported as an artifact in the last pipeline."""
        found = self.checkout / ".gitlab-ci-local" / "artifacts" / job / path
        assert found.exists(), f"{job} left no artifact {path}"
        return found
