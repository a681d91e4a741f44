"""Load a local page in headless Chromium and report what a person would see: a full-page screenshot, every
image's natural size, and the console's errors (console.error, uncaught exceptions, failed loads).

Talks the DevTools protocol over ``--remote-debugging-pipe`` (JSON messages ending in NUL on file
descriptors 3 and 4), so it needs no websocket library and opens no port.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageCheck:
    images: list[dict[str, Any]]  # {"src", "naturalWidth", "naturalHeight", "complete"}
    console_errors: list[str]
    broken_marker: str | None  # <body data-broken-images> set by the page's own script
    screenshot: Path
    size: tuple[int, int]  # css width, height of the whole page
    log: list[str] = field(default_factory=list)

    @property
    def broken_images(self) -> list[dict[str, Any]]:
        return [i for i in self.images if not i["complete"] or i["naturalWidth"] <= 0]


class _Pipe:
    def __init__(self, process: subprocess.Popen, write_fd: int, read_fd: int, timeout: float) -> None:
        self.process, self.write_fd, self.read_fd, self.timeout = process, write_fd, read_fd, timeout
        self.buffer = b""
        self.events: list[dict[str, Any]] = []
        self.next_id = 0

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self.read_fd], [], [], left)
            if ready:
                chunk = os.read(self.read_fd, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe (exit code {self.process.poll()})")
                self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read_message(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event


def _errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(
                "console.error: "
                + " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            )
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append("exception: " + str(details.get("exception", {}).get("description", details.get("text"))))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
    return errors


def _high(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


def check_page(
    page: Path, screenshot: Path, width: int = 1280, timeout: float = 60.0, chromium: str | None = None
) -> PageCheck:
    """Open ``page`` (a local HTML file), wait for its load event, then screenshot the whole page to
    ``screenshot`` and collect its images and console errors. RuntimeError when chromium is missing."""
    executable = chromium or find_chromium()
    if executable is None:
        raise RuntimeError("chromium not found")
    to_browser_read, to_browser_write = os.pipe()
    from_browser_read, from_browser_write = os.pipe()
    # the child's ends above 9, so that moving them to 3 and 4 never overwrites one of them
    to_browser_read, from_browser_write = (_high(to_browser_read), _high(from_browser_write))
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            executable,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "--hide-scrollbars",
            "--mute-audio",
            "about:blank",
        ]
        # the browser reads fd 3 and writes fd 4: bash moves the pipe ends there
        wrapper = f'exec "$@" 3<&{to_browser_read} 4>&{from_browser_write} {to_browser_read}<&- {from_browser_write}>&-'
        process = subprocess.Popen(
            ["bash", "-c", wrapper, "chromium", *command],
            pass_fds=(to_browser_read, from_browser_write),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        pipe = _Pipe(process, to_browser_write, from_browser_read, timeout)
        try:
            target = pipe.call("Target.createTarget", url="about:blank")["targetId"]
            session = pipe.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                pipe.call(f"{domain}.enable", session)
            pipe.call(
                "Emulation.setDeviceMetricsOverride",
                session,
                width=width,
                height=900,
                deviceScaleFactor=1,
                mobile=False,
            )
            pipe.events.clear()
            pipe.call("Page.navigate", session, url=Path(page).resolve().as_uri())
            pipe.wait_for("Page.loadEventFired")
            found = pipe.call(
                "Runtime.evaluate",
                session,
                returnByValue=True,
                expression=(
                    "JSON.stringify({images: Array.from(document.images).map(i => ({src: i.getAttribute('src'), "
                    "naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight, complete: i.complete})), "
                    "marker: document.body.getAttribute('data-broken-images')})"
                ),
            )
            state = json.loads(found["result"]["value"])
            metrics = pipe.call("Page.getLayoutMetrics", session)
            content = metrics.get("cssContentSize") or metrics["contentSize"]
            size = (int(content["width"]), int(content["height"]))
            shot = pipe.call(
                "Page.captureScreenshot",
                session,
                format="png",
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1},
            )
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
            errors = _errors(pipe.events)
            with contextlib.suppress(RuntimeError, TimeoutError):
                pipe.call("Browser.close")
        finally:
            os.close(to_browser_write)
            os.close(from_browser_read)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            stderr = process.stderr.read().decode("utf-8", "replace") if process.stderr else ""
    return PageCheck(state["images"], errors, state["marker"], Path(screenshot), size, stderr.splitlines()[-20:])
