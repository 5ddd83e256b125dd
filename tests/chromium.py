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
            pytest.skip(
                f"no Chromium here and it could not be installed ({why}); install it with apt-get install chromium"
            )
    return path


def _run(browser: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        return subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(
    browser: str, url: str, png: Path, size: tuple[int, int] = (1280, 2400), wait_ms: int = 5000, timeout: float = 120
) -> Path:
    """Render ``url`` (a file:// or http:// address) and save a PNG of the window."""
    png = Path(png)
    done = _run(
        browser,
        [f"--window-size={size[0]},{size[1]}", f"--virtual-time-budget={wait_ms}", f"--screenshot={png}", url],
        timeout,
    )
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


class DevToolsPage:
    """One page of a headless Chromium driven over the DevTools protocol (with aiohttp, which MLflow
    already depends on), for pages that need a click before they show what a test checks:

        with DevToolsPage(browser) as page:
            page.goto(url)
            page.wait_for("document.querySelector('button.expand') !== null")
            page.evaluate("document.querySelector('button.expand').click()")
            html = page.html(); page.screenshot(png)
    """

    def __init__(self, browser: str, size: tuple[int, int] = (1600, 1000), timeout: float = 60) -> None:
        import asyncio

        self.browser, self.size, self.timeout = browser, size, timeout
        self._loop = asyncio.new_event_loop()
        self._profile = tempfile.mkdtemp(prefix="chromium-profile-")
        self._process: subprocess.Popen | None = None
        self._ids = 0

    def __enter__(self) -> DevToolsPage:
        self._process = subprocess.Popen(
            [
                self.browser,
                *FLAGS,
                f"--user-data-dir={self._profile}",
                f"--window-size={self.size[0]},{self.size[1]}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._loop.run_until_complete(self._connect(self._endpoint()))
        except BaseException:
            self.__exit__()
            raise
        return self

    def _endpoint(self) -> str:
        """The browser's DevTools address, from the ``DevToolsActivePort`` file (port, then path) that
        Chromium writes into its profile once it listens; waits up to ``timeout``."""
        import time

        marker = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AssertionError(f"Chromium exited (code {self._process.returncode}) before opening DevTools")
            lines = marker.read_text().split() if marker.is_file() else []
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.1)
        raise AssertionError(f"Chromium did not open its DevTools endpoint within {self.timeout} s")

    async def _connect(self, endpoint: str) -> None:
        import aiohttp

        self._http = aiohttp.ClientSession()
        self._socket = await self._http.ws_connect(endpoint, max_msg_size=0)
        target = await self._send("Target.createTarget", {"url": "about:blank"})
        attached = await self._send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        self._session = attached["sessionId"]
        await self._send("Page.enable", session=True)

    async def _send(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        import asyncio

        self._ids += 1
        message = {"id": self._ids, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        await self._socket.send_json(message)
        async with asyncio.timeout(self.timeout):
            while True:
                answer = await self._socket.receive_json()
                if answer.get("id") == self._ids:
                    if "error" in answer:
                        raise AssertionError(f"Chromium refused {method}: {answer['error']}")
                    return answer.get("result", {})

    def goto(self, url: str) -> None:
        self._loop.run_until_complete(self._send("Page.navigate", {"url": url}, session=True))

    def evaluate(self, expression: str) -> object:
        """The value of a JavaScript expression in the page."""
        result = self._loop.run_until_complete(
            self._send(
                "Runtime.evaluate",
                {"expression": expression, "returnByValue": True, "awaitPromise": True},
                session=True,
            )
        )
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30, what: str = "") -> None:
        """Poll a JavaScript expression until it is true."""
        import time

        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never showed {what or expression} within {timeout} s")
            time.sleep(0.25)

    def html(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))

    def screenshot(self, png: Path) -> Path:
        import base64

        shot = self._loop.run_until_complete(self._send("Page.captureScreenshot", {"format": "png"}, session=True))
        Path(png).write_bytes(base64.b64decode(shot["data"]))
        return Path(png)

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            if getattr(self, "_socket", None) is not None:
                await self._socket.close()
            if getattr(self, "_http", None) is not None:
                await self._http.close()

        self._loop.run_until_complete(close())
        self._loop.close()
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        shutil.rmtree(self._profile, ignore_errors=True)
