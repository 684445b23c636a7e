"""End to end: an explorer renders in JupyterLab, and moving its slider changes the image.

Starts a JupyterLab server on a free port with a random token in a temporary directory,
writes a one-cell notebook that builds `widgets.latent_explorer` over a cheap NumPy decoder,
opens it in headless Chromium through Playwright, runs the cell, presses an arrow key on the
slider's handle and waits for the image's PNG bytes to change.

Needs Debian's `chromium` (`sudo apt-get install chromium`) and `pip install playwright`;
Playwright drives the system browser, so `playwright install` is never needed. Without them
the test is skipped. `.ci/run` installs both, so CI runs it.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_SECONDS = 180  # Server start, kernel start and the first widget render.
CELL = """\
import numpy as np
from dgm_course import widgets

weights = np.random.default_rng(0).uniform(-1, 1, (2, 28 * 28))

def decode(z):
    return (0.5 + z @ weights / 12).reshape(len(z), 28, 28, 1)

widgets.latent_explorer(decode, latent_dim=2)
"""
# The bytes behind the <img>'s blob: URL, as a short fingerprint (length and a sum).
FINGERPRINT_JS = """async (image) => {
    const bytes = new Uint8Array(await (await fetch(image.src)).arrayBuffer());
    let sum = 0;
    for (let i = 0; i < bytes.length; i++) sum = (sum * 31 + bytes[i]) % 1000000007;
    return bytes.length + ":" + sum;
}"""


def _browser_or_skip():
    """Returns (sync_playwright, chromium path), or skips saying how to install them
    (fails instead when DGM_REQUIRE_BROWSER is set, as `.ci/run` does with chromium)."""
    missing = pytest.fail if os.environ.get("DGM_REQUIRE_BROWSER") else pytest.skip
    chromium = shutil.which("chromium")
    if chromium is None:
        missing("needs Debian's chromium: sudo apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("needs Playwright: pip install playwright (it drives the system chromium; "
                "`playwright install` is not needed)")
    return sync_playwright, chromium


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_jupyterlab(root, port, token):
    """Starts `jupyter lab` in its own process group, with settings kept inside `root`."""
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                 "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR"):
        env[name] = str(root / ".jupyter" / name.lower())
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
               "--ip=127.0.0.1", "--allow-root",  # CI containers run as root.
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    with open(root / "jupyterlab.log", "wb") as log:  # The server keeps its own copy.
        return subprocess.Popen(command, cwd=root, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _wait_until_answering(server, url, deadline):
    """Polls the server's status API until it answers; fails if the server exits first."""
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"jupyter lab exited with code {server.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                json.load(response)
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"jupyter lab did not answer {url} within {TIMEOUT_SECONDS} s")


def _stop(server):
    """Stops the server and its kernels (the process group it was started in)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.mark.slow
def test_moving_a_slider_in_jupyterlab_changes_the_image(tmp_path):
    sync_playwright, chromium = _browser_or_skip()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, tmp_path / "explorer.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + TIMEOUT_SECONDS
    server = _start_jupyterlab(tmp_path, port, token)
    try:
        _wait_until_answering(server, f"{base}/api/status?token={token}", deadline)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                                 args=["--no-sandbox"])
            try:
                page = browser.new_page()
                page.set_default_timeout(1000 * max(1, deadline - time.monotonic()))
                page.goto(f"{base}/lab/tree/explorer.ipynb?token={token}")
                try:
                    _run_cell_and_move_slider(page)
                except BaseException:  # Keep a picture of the page for the failure report.
                    page.screenshot(path=tmp_path / "failure.png")
                    print(f"screenshot: {tmp_path / 'failure.png'}; cell:",
                          page.locator(".jp-Cell").first.inner_text(timeout=5000))
                    raise
            finally:
                browser.close()
    except BaseException:  # Also pytest.fail: show why the server or the page failed.
        print((tmp_path / "jupyterlab.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        _stop(server)


def _run_cell_and_move_slider(page):
    """Runs the notebook's cell, then checks that an arrow key on the slider changes the PNG."""
    _run_first_cell(page)
    image = page.locator(".jp-OutputArea-output img.widget-image").first
    image.wait_for(state="visible")
    page.wait_for_function("(image) => image.naturalWidth > 0", arg=image.element_handle())
    before_src = image.get_attribute("src")
    before = image.evaluate(FINGERPRINT_JS)
    handle = page.locator(".jp-OutputArea-output .widget-slider .noUi-handle").first
    handle.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    readout = page.locator(".jp-OutputArea-output .widget-readout").first
    page.wait_for_function("(element) => parseFloat(element.textContent) > 0",
                           arg=readout.element_handle())
    page.wait_for_function(
        "([image, src]) => image.src !== src && image.naturalWidth > 0",
        arg=[image.element_handle(), before_src],
    )
    assert image.evaluate(FINGERPRINT_JS) != before


def _run_first_cell(page, attempts=5):
    """Clicks into the first cell and presses Shift+Enter until its prompt shows [*] or [1]
    (a key press sent while JupyterLab is still moving the focus can be lost)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    prompt = page.locator(".jp-Cell .jp-InputPrompt").first
    for _ in range(attempts):
        page.locator(".jp-Cell .cm-content").first.click()
        page.keyboard.press("Shift+Enter")
        try:
            page.wait_for_function(r"(prompt) => /\[(\*|\d+)\]/.test(prompt.textContent)",
                                   arg=prompt.element_handle(), timeout=10_000)
            return
        except PlaywrightTimeoutError:
            continue
    pytest.fail(f"the cell did not start running after {attempts} presses of Shift+Enter")
