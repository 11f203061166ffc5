"""Headless Chromium (the distribution's ``chromium``) driven over the DevTools protocol
through a pipe (``--remote-debugging-pipe``: no port, no file to wait for).

:class:`Browser` opens a page, waits for its load event and records what the page
asked of the network: every ``Network.requestWillBeSent`` of the page (the
browser's own background traffic is not the page's and is not seen here) and
every console or log entry (a request the page's Content-Security-Policy refused
shows up there as "Refused to load ..."). It reads the DOM, runs a script in the
page and takes screenshots.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

#: Set (to anything) where Chromium must be there: CI (``.ci/run`` installs it).
REQUIRE = "REQUIRE_CHROMIUM"

#: How long one protocol answer or event may take (a bound against hanging, not a wait).
_TIMEOUT = 60.0


def chromium_binary() -> str:
    """The path of ``chromium``; skips the test where it is absent, fails it where required."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get(REQUIRE):
            pytest.fail(f"chromium is not installed, and {REQUIRE} is set")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


class Page:
    """One tab: its session, and what it asked of the network and said in its console."""

    def __init__(self, browser: Browser, session: str) -> None:
        self._browser = browser
        self.session = session
        self.requests: list[str] = []
        self.console: list[str] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self._browser.call(method, session=self.session, **params)

    def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` in the page (JSON-serialisable values only)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def dom(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))

    def screenshot(self, path: Path, width: int = 1200, height: int = 1600) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width, height=height, deviceScaleFactor=1, mobile=False,
        )  # fmt: skip
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        path.write_bytes(base64.b64decode(data["data"]))


class Browser:
    """A headless Chromium process spoken to over ``--remote-debugging-pipe``."""

    def __init__(self, profile: Path) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        command = [
            chromium_binary(),
            "--headless",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "about:blank",
        ]
        if os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox

        def child_fds() -> None:  # the protocol's pipes are the child's fds 3 and 4
            high_r, high_w = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self._process = subprocess.Popen(
            command,
            # 3 and 4 are kept open too: fds not listed are closed after preexec_fn
            pass_fds=(3, 4, to_child_r, from_child_w),
            preexec_fn=child_fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self._pages: dict[str, Page] = {}

    # -------------------------------------------------------------- protocol

    def _send(self, message: dict[str, Any]) -> None:
        os.write(self._to_child, json.dumps(message).encode() + b"\0")

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_child], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the protocol pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        self._record(message)
        return message

    def _record(self, message: dict[str, Any]) -> None:
        page = self._pages.get(message.get("sessionId", ""))
        if page is None:
            return
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            page.requests.append(params["request"]["url"])
        elif method == "Log.entryAdded":
            page.console.append(params["entry"].get("text", ""))
        elif method == "Runtime.consoleAPICalled":
            page.console.append(" ".join(str(a.get("value")) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            page.console.append(json.dumps(params.get("exceptionDetails", {}))[:500])

    def call(self, method: str, *, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self._send(message)
        deadline = time.monotonic() + _TIMEOUT
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == self._next_id:
                assert "error" not in answer, (method, answer["error"])
                result: dict[str, Any] = answer.get("result", {})
                return result

    def wait_for(self, method: str, session: str) -> dict[str, Any]:
        deadline = time.monotonic() + _TIMEOUT
        while True:
            message = self._receive(deadline)
            if message.get("method") == method and message.get("sessionId") == session:
                params: dict[str, Any] = message.get("params", {})
                return params

    # ----------------------------------------------------------------- pages

    def open(self, url: str) -> Page:
        """A new tab that loaded ``url`` (its load event has fired)."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = self._pages[session] = Page(self, session)
        for domain in ("Network", "Page", "Log", "Runtime"):
            page.call(f"{domain}.enable")
        page.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired", session)
        return page

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            self._process.kill()
        finally:
            self._process.wait(timeout=_TIMEOUT)
            os.close(self._to_child)
            os.close(self._from_child)


@contextmanager
def chromium(profile: Path) -> Iterator[Browser]:
    browser = Browser(profile)
    try:
        yield browser
    finally:
        browser.close()
