"""OpenHands' own unit tests of `DockerSandboxService`, run against the pooled subclass.

The test file is taken at run time from a fetched OpenHands repository (never copied into this
repository): `$DOCKPOOL_OH_REPO`, else the snapshots the `fetch` tool leaves under
/work/.mirror/. The version is the release tag of the installed openhands-ai (e.g. `1.11.0`);
if no snapshot has that tag, the newest version of the file in the snapshots is used and the
summary says so (`$DOCKPOOL_OH_TESTS_REF` picks a ref explicitly). Without a repository the
test is skipped.

Each variant runs the file in a subprocess with `DockerSandboxService` in the test module
replaced: `stock` (the class itself, the baseline), `pooled-off` (PooledDockerSandboxService
with no pool: must pass everything the stock class passes) and `pooled-empty` (pool enabled,
no member ready: the stock cold path).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from oh_common import OH_VERSION, SUMMARY

pytestmark = pytest.mark.oh1

TEST_FILE = "tests/unit/app_server/test_docker_sandbox_service.py"
MIRRORS = ("/work/.mirror/OpenHands+OpenHands/repo", "/work/.mirror/All-Hands-AI+OpenHands/repo")

CONFTEST = '''
import os
import pytest

VARIANT = os.environ["DOCKPOOL_SUITE_VARIANT"]


@pytest.fixture(autouse=True)
def _substitute_service(request, monkeypatch):
    if VARIANT == "stock" or not hasattr(request.module, "DockerSandboxService"):
        return
    from dockpool_openhands.registry import PoolRegistry, PoolSettings
    from dockpool_openhands.sandbox_service import PooledDockerSandboxService

    class EmptyPools(PoolRegistry):
        """A pool exists but has no ready member (all claimed, or still warming)."""

        def known_empty(self, request):
            return True

        def pool_for(self, spec, settings):
            return None

    def pooled(**kwargs):
        if VARIANT == "pooled-empty":
            kwargs.update(pool_settings=PoolSettings(size=2, name="suite"), registry=EmptyPools())
        return PooledDockerSandboxService(**kwargs)

    monkeypatch.setattr(request.module, "DockerSandboxService", pooled)
'''


def git(repo: str, *args: str) -> str:
    done = subprocess.run(["git", "--git-dir", repo, *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def find_suite() -> tuple[str, str, str]:
    """(git dir, ref, how it was chosen) of the test file to run; skip if there is none."""
    repos = [r for r in (os.environ.get("DOCKPOOL_OH_REPO"), *MIRRORS) if r and Path(r).exists()]
    if not repos:
        pytest.skip(
            "no OpenHands repository (fetch github:OpenHands/OpenHands, or set DOCKPOOL_OH_REPO)"
        )
    wanted = os.environ.get("DOCKPOOL_OH_TESTS_REF")
    for ref in [wanted] if wanted else [OH_VERSION, f"v{OH_VERSION}"]:
        for repo in repos:
            if git(repo, "cat-file", "-e", f"{ref}:{TEST_FILE}") == "" and git(
                repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"
            ):
                return repo, ref, f"ref {ref}"
    if wanted:
        pytest.skip(f"{TEST_FILE} not found at {wanted} in {repos}")
    newest = []
    for repo in repos:
        line = git(repo, "log", "-1", "--format=%ct %H %cs", "HEAD", "--", TEST_FILE)
        if line:
            stamp, commit, day = line.split()
            newest.append((int(stamp), repo, commit, day))
    if not newest:
        pytest.skip(f"{TEST_FILE} is in none of {repos}")
    _, repo, commit, day = max(newest)
    note = f"tag {OH_VERSION} absent from the snapshots; newest version: {commit[:10]} ({day})"
    return repo, commit, note


def start_variant(folder: Path, variant: str) -> subprocess.Popen[str]:
    """Run the suite with `variant` substituted, in a subprocess (the variants run at once)."""
    env = {**os.environ, "DOCKPOOL_SUITE_VARIANT": variant}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(folder),
         "-c", str(folder / "pytest.ini"), f"--junitxml={folder / variant}.xml", str(folder)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, cwd=folder,
    )  # fmt: skip


def outcomes_of(report: Path) -> dict[str, str]:
    """{test id: passed|failed|skipped} from a JUnit XML report."""
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
        kinds = {child.tag for child in case}
        failed = kinds & {"failure", "error"}
        outcomes[name] = "failed" if failed else "skipped" if "skipped" in kinds else "passed"
    return outcomes


def test_openhands_docker_sandbox_service_suite(tmp_path: Path) -> None:
    repo, ref, how = find_suite()
    source = subprocess.run(
        ["git", "--git-dir", repo, "show", f"{ref}:{TEST_FILE}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (tmp_path / "test_docker_sandbox_service.py").write_text(source)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text(
        textwrap.dedent(
            """
            [pytest]
            addopts = -p no:warnings
            asyncio_mode = auto
            asyncio_default_fixture_loop_scope = function
            """
        )
    )
    variants = ("stock", "pooled-off", "pooled-empty")
    running = {v: start_variant(tmp_path, v) for v in variants}
    for process in running.values():
        process.wait(timeout=600)
    results = {v: outcomes_of(tmp_path / f"{v}.xml") for v in variants}
    SUMMARY.append(f"OpenHands {TEST_FILE} from {repo} ({how}):")
    for variant, outcomes in results.items():
        counts = {
            k: sum(1 for o in outcomes.values() if o == k) for k in ("passed", "failed", "skipped")
        }
        SUMMARY.append(f"  {variant:13} {len(outcomes)} ran: {counts}")
    stock_passed = {t for t, o in results["stock"].items() if o == "passed"}
    for t, o in sorted(results["stock"].items()):
        if o != "passed":
            SUMMARY.append(f"  stock {o}: {t} (fails against openhands-ai {OH_VERSION} itself)")
    for variant in ("pooled-off", "pooled-empty"):
        lost = sorted(t for t in stock_passed if results[variant].get(t) != "passed")
        for t in lost:
            SUMMARY.append(f"  {variant} lost: {t}")
    assert results["stock"], "the suite ran no test"
    assert stock_passed <= {t for t, o in results["pooled-off"].items() if o == "passed"}
    assert stock_passed <= {t for t, o in results["pooled-empty"].items() if o == "passed"}
