"""The web UI of `gitexp server --auth` in headless Chromium (Debian's, via Playwright): the login
page, a READ user's action refused (403), an admin's action committed under their name, a
CSRF attempt from a page of another origin refused, logout."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading

import pytest

from ..server_process import ServerProcess

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="needs Debian's chromium: `make browser` (apt-get install chromium)")


def _add_user(repo, name, password, *extra):
    subprocess.run([sys.executable, "-m", "gitexp", "--repo", str(repo), "users", "add", name, "--password-stdin",
                    "--email", f"{name}@example.com", *extra], input=password + "\n", text=True, check=True,
                   capture_output=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import gitexp

    repo = tmp_path_factory.mktemp("uiauth") / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    eid = gitexp.Client(str(repo)).create_experiment("team")
    _add_user(repo, "root", "root-pw", "--admin")
    _add_user(repo, "rita", "rita-pw")
    server = ServerProcess(repo, ["--auth"])
    yield server, repo, eid
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, served):
    """A page on another origin (another port) that posts to the server's action when loaded."""
    server, _, eid = served
    root = tmp_path_factory.mktemp("hostile")
    (root / "index.html").write_text(
        f'<form id="f" method="post" action="{server.url}/actions/experiments/{eid}/tags">'
        '<input name="key" value="pwned"><input name="value" value="yes"><input name="csrf_token" value="guess">'
        '</form><script>document.getElementById("f").submit()</script>')
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
    httpd.shutdown()


def _login(browser, url, name, password):
    context = browser.new_context(base_url=url)
    page = context.new_page()
    page.goto("/")
    assert "/login" in page.url
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    return context, page


def test_login_read_user_refused_admin_committed_csrf_refused(browser, served, hostile):
    server, repo, eid = served
    # A wrong password stays on the login page, 401.
    context = browser.new_context(base_url=server.url)
    page = context.new_page()
    page.goto("/")
    page.fill("input[name=username]", "rita")
    page.fill("input[name=password]", "wrong")
    with page.expect_navigation() as nav:
        page.click("button[type=submit]")
    assert nav.value.status == 401 and "Wrong user name or password" in page.content()
    context.close()
    # A READ user sees the experiment, but its change is refused.
    context, page = _login(browser, server.url, "rita", "rita-pw")
    cookie = next(c for c in context.cookies() if c["name"] == "gitexp_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    response = page.goto(f"/experiments/{eid}")
    assert response.status == 200 and "team" in page.content()
    page.click("#experiment-details summary")
    page.fill("#experiment-details input[name=key]", "by-rita")
    with page.expect_navigation() as nav:
        page.click("#experiment-details form:has(input[name=key]) button[type=submit]")
    assert nav.value.status == 403 and "lacks EDIT" in page.content()
    context.close()
    # The admin's change goes through and is committed under their name.
    context, page = _login(browser, server.url, "root", "root-pw")
    page.goto(f"/experiments/{eid}")
    page.click("#experiment-details summary")
    page.fill("#experiment-details input[name=key]", "by-root")
    with page.expect_navigation() as nav:
        page.click("#experiment-details form:has(input[name=key]) button[type=submit]")
    assert nav.value.status == 200 and "by-root" in page.content()
    author = subprocess.run(["git", "log", "-1", "--format=%an <%ae>", "gitexp"], cwd=repo, capture_output=True,
                            text=True).stdout.strip()
    assert author == "root <root@example.com>"
    # A page of another origin posting with the admin's cookie is refused.
    hostile_page = context.new_page()
    with hostile_page.expect_navigation(url=f"{server.url}/**") as nav:
        hostile_page.goto(hostile)
    assert nav.value.status == 403
    tags = subprocess.run([sys.executable, "-c", f"import gitexp; print(gitexp.Client({str(repo)!r})"
                           f".get_experiment({eid!r}).tags)"], capture_output=True, text=True).stdout
    assert "pwned" not in tags and "by-root" in tags
    # Logout ends the session.
    page.goto(f"/experiments/{eid}")
    with page.expect_navigation():
        page.click("#logout button")
    assert "/login" in page.url
    page.goto("/")
    assert "/login" in page.url
    context.close()
