"""The chat page in a real headless Chromium, driven by Playwright.

Run by tests/browser.rs against a `chatroom --web` it started:

    python3 tests/browser/chat.py WEB_URL TCP_HOST TCP_PORT SERVER_PID SCREENSHOT [CA_FILE]

With CA_FILE the server speaks TLS on both ports (`--tls-cert`): the pages
load over https and chat over wss (Chromium told to accept the test's
self-signed certificate), and the line client is `openssl s_client`
checking the certificate against CA_FILE instead of `nc`.

Two pages and a line client chat both ways; a page takes a nick; the XSS
line is shown literally and runs nothing; killing the server shows
"connection lost" on both pages. Prints "ok" at the end; any failed check
raises (exit status 1). Every wait has a timeout.
"""

import os
import queue
import signal
import subprocess
import sys
import threading

from playwright.sync_api import sync_playwright

WEB, HOST, PORT, PID, SHOT = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
CA = sys.argv[6] if len(sys.argv) > 6 else None
STEP_MS = 10_000
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
XSS = "<img src=x onerror=alert(1)>"


class Nc:
    """`nc` (or, over TLS, `openssl s_client`) as a chat client: lines typed
    on its stdin, lines read from its stdout."""

    def __init__(self):
        if CA:
            # -quiet: no session chatter on stdout, and stdin's EOF is not a quit.
            argv = ["openssl", "s_client", "-quiet", "-verify_return_error",
                    "-CAfile", CA, "-servername", "localhost", "-connect", f"{HOST}:{PORT}"]
        else:
            argv = ["nc", HOST, PORT]
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, text=True, bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))

    def say(self, text):
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def expect(self, want):
        """Reads lines until one equals (or, for a prefix ending in '*', starts with) want."""
        seen = []
        while True:
            line = self.lines.get(timeout=STEP_MS / 1000)
            seen.append(line)
            if line == want or (want.endswith("*") and line.startswith(want[:-1])):
                return line
            assert len(seen) < 100, f"nc never saw {want!r}: {seen}"


def wait_text(page, text):
    page.wait_for_function(
        "t => Array.from(document.querySelectorAll('#log div')).some(d => d.textContent === t)",
        arg=text, timeout=STEP_MS)


def wait_status(page, text):
    page.wait_for_function(
        "t => document.getElementById('status').textContent === t", arg=text, timeout=STEP_MS)


def type_line(page, text):
    page.fill("#input", text)
    page.press("#input", "Enter")


def name_of(page):
    """The page's chat name, from its welcome notice."""
    page.wait_for_function(
        "() => (document.querySelector('#log div') || {}).textContent?.startsWith('* welcome ')",
        timeout=STEP_MS)
    welcome = page.locator("#log div").first.text_content()
    return welcome[len("* welcome "):].split("!")[0]


def main():
    dialogs = []
    with sync_playwright() as pw:
        flags = FLAGS + (["--ignore-certificate-errors"] if CA else [])
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
        try:
            pages = []
            for _ in range(2):
                page = browser.new_context(ignore_https_errors=bool(CA)).new_page()
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                page.goto(WEB, timeout=STEP_MS)
                assert page.url.startswith("https://" if CA else "http://"), page.url
                wait_status(page, "connected")
                pages.append(page)
            a, b = pages
            name_a, name_b = name_of(a), name_of(b)
            wait_text(a, f"* {name_b} joined")

            nc = Nc()
            welcome = nc.expect("* welcome *")
            name_nc = welcome[len("* welcome "):].split("!")[0]
            wait_text(a, f"* {name_nc} joined")
            wait_text(b, f"* {name_nc} joined")

            # Page to page and to nc.
            type_line(a, "hello from page a")
            wait_text(b, f"<{name_a}> hello from page a")
            nc.expect(f"<{name_a}> hello from page a")

            # nc to both pages.
            nc.say("hello from nc")
            wait_text(a, f"<{name_nc}> hello from nc")
            wait_text(b, f"<{name_nc}> hello from nc")

            # /nick from a page.
            type_line(b, "/nick bob")
            wait_text(b, "* you are now bob")
            wait_text(a, f"* {name_b} is now known as bob")
            nc.expect(f"* {name_b} is now known as bob")

            # The XSS line: shown literally, runs nothing, adds no element.
            type_line(b, XSS)
            wait_text(a, f"<bob> {XSS}")
            nc.expect(f"<bob> {XSS}")
            assert a.locator("#log img").count() == 0, "markup was parsed"
            a.wait_for_timeout(300)  # give a wrongly parsed onerror the chance to fire
            assert not dialogs, f"a dialog opened: {dialogs}"

            os.makedirs(os.path.dirname(SHOT), exist_ok=True)
            a.screenshot(path=SHOT, full_page=True)

            # The server goes away: both pages say so.
            os.kill(PID, signal.SIGKILL)
            for page in pages:
                wait_status(page, "connection lost")
                assert page.locator("#input").is_disabled()
            b.screenshot(path=SHOT.replace(".png", "-lost.png"), full_page=True)
            nc.p.kill()
        finally:
            browser.close()
    print("ok")


if __name__ == "__main__":
    main()
