"""Browser tests: Debian's chromium driven by Playwright (sync API) against `winback serve`'s app run
by uvicorn in a background thread, over a small analysed workspace that has sent campaigns.

Playwright never downloads a browser here: ``executable_path="/usr/bin/chromium"``. The tests
fail when chromium is missing (`make test` installs it)."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest

from tests.web.pages_fixtures import add_users, build_sent_workspace

CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="package")
def workspace_sent(tmp_path_factory):
    return build_sent_workspace(tmp_path_factory.mktemp("e2e"))


@pytest.fixture(scope="package")
def server(workspace_sent):
    """The app on a free local port: ``{"url", "app", "settings"}``."""
    import uvicorn

    from winback.web.app import create_app

    app = create_app(workspace_sent)
    add_users(app.state.engine, app.state.clock.now())
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, name="uvicorn-e2e", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield {"url": f"http://127.0.0.1:{port}", "app": app, "settings": workspace_sent}
    finally:
        srv.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="package")
def browser(server):
    # after the server: Playwright's sync API runs an event loop in this thread, and building the
    # workspace (asyncio.run in the simulated worker) must happen before it starts. Package scope:
    # the loop ends with the e2e tests, so later tests may call asyncio.run again
    if not shutil.which(CHROMIUM):  # a failure, not a skip: `make test` installs it (target `browser`)
        pytest.fail(f"Debian's chromium is not installed at {CHROMIUM}: run `make browser`")
    from playwright import sync_api
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM,
                               args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                     # no name is ever resolved: nothing can leave the machine
                                     "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()
