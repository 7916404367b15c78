"""Open an HTML file in headless Chromium and check it as a reader would see it: no console errors,
no uncaught exceptions, no failed loads, and every <img> decoded (natural size > 0).

    python tools/check_html.py runs/sweeps/NAME/report/report.html [--screenshot docs/report.png]

Exit 0 when clean, 1 with the problems listed. Needs Debian's `chromium` (`apt-get install -y
chromium`) and the `websockets` package (installed with aim). It speaks the DevTools protocol over
a local pipe-less websocket on 127.0.0.1 (an ephemeral port) and stops Chromium's whole process group on exit.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One DevTools session on a fresh page; call() waits for its reply, events are collected."""

    def __init__(self, ws):
        self.ws, self.next_id, self.events = ws, 0, []

    def call(self, method: str, timeout: float = 30, **params) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.time() + timeout
        while time.time() < deadline:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.time())))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)
        raise TimeoutError(method)

    def wait_event(self, method: str, timeout: float = 30) -> None:
        if any(e.get("method") == method for e in self.events):
            return
        deadline = time.time() + timeout
        while time.time() < deadline:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.time())))
            self.events.append(msg)
            if msg.get("method") == method:
                return
        raise TimeoutError(method)


def _devtools_port(profile: Path, proc: subprocess.Popen, timeout: float = 30) -> int:
    f = profile / "DevToolsActivePort"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with code {proc.returncode} before it listened")
        if f.exists() and f.read_text().strip():
            return int(f.read_text().split()[0])
        time.sleep(0.1)
    raise TimeoutError("chromium did not open its DevTools port")


def check(html: Path, screenshot: Path | None = None, width: int = 1200, height: int = 1500) -> dict[str, Any]:
    """Problems found on the page (empty lists when clean) and the images' decoded sizes."""
    from websockets.sync.client import connect

    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="chromium-") as tmp:
        profile = Path(tmp)
        proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            port = _devtools_port(profile, proc)
            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
            ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
            with connect(ws_url, max_size=None, open_timeout=20) as ws:
                return _inspect(Page(ws), html, screenshot, width, height)
        finally:
            _stop(proc)


def _inspect(page: Page, html: Path, screenshot: Path | None, width: int, height: int) -> dict[str, Any]:
    for domain in ("Page", "Runtime", "Log", "Network"):
        page.call(f"{domain}.enable")
    page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
    page.call("Page.navigate", url=html.resolve().as_uri())
    page.wait_event("Page.loadEventFired")
    images = page.call("Runtime.evaluate", returnByValue=True, expression=(
        "Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,"
        " width: i.naturalWidth, height: i.naturalHeight}))"))["result"]["value"]
    if screenshot is not None:
        shot = page.call("Page.captureScreenshot", format="png")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    problems: dict[str, list] = {"console": [], "exceptions": [], "log": [], "failed_loads": []}
    for e in page.events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
            problems["console"].append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            problems["exceptions"].append(p["exceptionDetails"].get("text", "exception"))
        elif method == "Log.entryAdded" and p["entry"].get("level") in ("error", "warning"):
            problems["log"].append(p["entry"].get("text", ""))
        elif method == "Network.loadingFailed":
            problems["failed_loads"].append(p.get("errorText", "failed"))
    broken = [i["alt"] or "(no alt)" for i in images if not (i["complete"] and i["width"] > 0 and i["height"] > 0)]
    return {**problems, "broken_images": broken, "images": images}


def _stop(proc: subprocess.Popen) -> None:
    """Chromium and its helpers share one process group (start_new_session): stop all of it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)


def clean(result: dict[str, Any]) -> bool:
    return not any(result[k] for k in ("console", "exceptions", "log", "failed_loads", "broken_images"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("--screenshot", type=Path, help="write a PNG of the page's first screen")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1500)
    args = parser.parse_args(argv)
    if not args.html.is_file():
        print(f"error: {args.html} is not a file", file=sys.stderr)
        return 2
    result = check(args.html, args.screenshot, args.width, args.height)
    sizes = ", ".join(f"{i['width']}x{i['height']}" for i in result["images"])
    print(f"{args.html}: {len(result['images'])} images ({sizes or 'none'})")
    for key in ("console", "exceptions", "log", "failed_loads", "broken_images"):
        for item in result[key]:
            print(f"  {key}: {item}")
    print("clean" if clean(result) else "PROBLEMS")
    return 0 if clean(result) else 1


if __name__ == "__main__":
    sys.exit(main())
