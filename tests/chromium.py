"""Headless Chromium for browser checks in tests: find it (or install Debian's package where the
test runs as root with apt), take a screenshot of a page and read its rendered DOM.

Tests call :func:`chromium_or_skip`, which skips with the reason when no browser can be had.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--no-first-run",
)
NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _install() -> str:
    """Try Debian's package (refreshing the package lists once if needed); return why it failed, or ''."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "not root or no apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True, timeout=900)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    return "" if done.returncode == 0 else f"apt-get install chromium failed: {done.stderr.strip()[-300:]}"


def chromium_or_skip() -> str:
    """The browser's path; installs Debian's chromium if missing and possible, else skips the test."""
    path = find_chromium()
    if path is None:
        why = _install()
        path = find_chromium()
        if path is None:
            pytest.skip(f"no Chromium here and it could not be installed ({why}); install it with apt-get install chromium")
    return path


def _run(browser: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        return subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=timeout,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(browser: str, url: str, png: Path, size: tuple[int, int] = (1280, 2400), wait_ms: int = 5000,
               timeout: float = 120) -> Path:
    """Render ``url`` (a file:// or http:// address) and save a PNG of the window."""
    png = Path(png)
    done = _run(browser, [f"--window-size={size[0]},{size[1]}", f"--virtual-time-budget={wait_ms}",
                          f"--screenshot={png}", url], timeout)
    if not png.is_file() or png.stat().st_size == 0:
        raise AssertionError(f"Chromium wrote no screenshot of {url} (exit {done.returncode}): {done.stderr[-500:]}")
    return png


def rendered_dom(browser: str, url: str, wait_ms: int = 5000, timeout: float = 120) -> str:
    """The page's DOM after its scripts ran (up to ``wait_ms`` of virtual time), as HTML text."""
    done = _run(browser, [f"--virtual-time-budget={wait_ms}", "--dump-dom", url], timeout)
    if done.returncode != 0:
        raise AssertionError(f"Chromium could not render {url} (exit {done.returncode}): {done.stderr[-500:]}")
    return done.stdout


def artifact_path(name: str) -> Path:
    """Where a test keeps a file for people to look at after the run (screenshots): the folder named by
    ``PCDARTS_TEST_ARTIFACTS``, else ``test-artifacts/`` at the repository root (git-ignored)."""
    folder = Path(os.environ.get("PCDARTS_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
