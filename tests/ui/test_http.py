"""The UI over HTTP against `gitexp ui` on loopback: pages, escaping, CSRF and host checks,
artifact paths that cannot leave their run, safe artifact headers, chart data, paging."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from ._data import LONG_POINTS


@pytest.fixture(scope="module")
def http(ui_server):
    with ui_server.http() as client:
        yield client


def same_origin(server) -> dict:
    return {"Origin": server.url}


def test_every_page_renders_with_security_headers(ui_server, http):
    ids = ui_server.ids
    exp = ids["experiment_id"]
    pages = ["/", f"/experiments/{exp}", f"/runs?e={exp}&e={ids['other_experiment_id']}", f"/runs/{ids['long']}",
             f"/runs/{ids['long']}/artifacts", f"/runs/{ids['long']}/artifacts?path=model",
             f"/compare?runs={ids['children'][0]}&runs={ids['children'][1]}",
             f"/diff?a={ids['long']}&b={ids['dirty']}", "/models", "/models/ui-model",
             "/models/ui-model/versions/1", "/history", f"/history?run={ids['long']}"]
    for page in pages:
        response = http.get(page)
        assert response.status_code == 200, (page, response.text[:500])
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in \
            csp.split("script-src", 1)[1].split(";", 1)[0]
        assert response.headers["x-content-type-options"] == "nosniff"
        allowed = r'<script (src="[^"]+"|type="application/json" id="[\w-]+")>'
        assert "<script>" not in re.sub(allowed, "", response.text)


def test_user_strings_are_escaped_everywhere(ui_server, http):
    ids = ui_server.ids
    for page in (f"/experiments/{ids['experiment_id']}", f"/runs/{ids['xss']}", "/history",
                 f"/compare?runs={ids['xss']}&runs={ids['long']}", f"/diff?a={ids['xss']}&b={ids['long']}"):
        html = http.get(page).text
        assert "<script>window.__xss" not in html and 'onerror="window' not in html, page
        assert "&lt;script&gt;window.__xss=1&lt;/script&gt;evil-run" in html, page
    run_page = http.get(f"/runs/{ids['xss']}").text
    assert "&lt;img src=x onerror=&#34;window.__xss=2&#34;&gt;" in run_page
    assert "&lt;/td&gt;&lt;script&gt;window.__xss=3&lt;/script&gt;" in run_page
    # Data for scripts goes through |tojson: no raw "<" inside the JSON block.
    compare = http.get(f"/compare?runs={ids['xss']}&runs={ids['long']}").text
    block = compare.split('<script type="application/json" id="compare-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block and "\\u003cscript\\u003e" in block


def test_changes_need_a_same_origin_request(ui_server, http):
    run_id = ui_server.ids["action_runs"]["to-tag"]
    url = f"/actions/runs/{run_id}/tags"
    before = ui_server.tip()
    attempts = [
        {},                                                   # no Origin, no Referer (a forged form from nowhere)
        {"Origin": "http://evil.example"},                    # another site
        {"Origin": "null"},                                   # a sandboxed frame
        {"Origin": f"http://localhost:{ui_server.port}"},     # another origin, even on this machine
        {"Referer": "http://evil.example/page"},
        {"Origin": ui_server.url, "Sec-Fetch-Site": "cross-site"},
    ]
    for headers in attempts:
        response = http.post(url, data={"key": "csrf", "value": "x"}, headers=headers)
        assert response.status_code == 403, headers
        assert "Refused" in response.text
    assert ui_server.tip() == before, "a refused request must not commit"
    ok = http.post(url, data={"key": "reviewed", "value": "yes"}, headers=same_origin(ui_server))
    assert ok.status_code == 303
    assert urlsplit(ok.headers["location"]).path == f"/runs/{run_id}"
    name, email, subject = ui_server.last_commit()
    assert (name, email) == ("UI Tester", "ui-tester@example.com")
    assert subject == f"run {run_id[:8]}: edit"
    referer_ok = http.post(url, data={"key": "via", "value": "referer"},
                           headers={"Referer": f"{ui_server.url}/runs/{run_id}"})
    assert referer_ok.status_code == 303


def test_redirects_after_actions_stay_on_this_server(ui_server, http):
    run_id = ui_server.ids["action_runs"]["to-tag"]
    for target in ("//evil.example/x", "https://evil.example/", "javascript:alert(1)", "/\\evil.example"):
        response = http.post(f"/actions/runs/{run_id}/tags", data={"key": "k", "value": "v", "next": target},
                             headers=same_origin(ui_server))
        assert response.status_code == 303
        location = response.headers["location"]
        assert location.startswith(f"/runs/{run_id}?"), (target, location)
    response = http.post(f"/actions/runs/{run_id}/tags",
                         data={"key": "k", "value": "v", "next": "/history?run=" + run_id},
                         headers=same_origin(ui_server))
    assert response.headers["location"].startswith(f"/history?run={run_id}&flash=")


def test_other_host_names_are_refused(ui_server, http):
    # DNS rebinding: a page of evil.example that resolves to 127.0.0.1 sends Host: evil.example.
    response = http.get("/", headers={"Host": f"evil.example:{ui_server.port}"})
    assert response.status_code == 403  # the web app's one Host policy: PERMISSION_DENIED, as the API's
    assert http.get("/", headers={"Host": f"localhost:{ui_server.port}"}).status_code == 200


def test_artifact_paths_cannot_leave_the_run(ui_server, http):
    run_id = ui_server.ids["long"]
    for path in ("../run.yaml", "../../../../etc/passwd", "/etc/passwd", "logs/../../params.yaml",
                 "..%2Frun.yaml", ".git/config", "logs\\..\\..\\run.yaml"):
        for route in ("artifact", "artifacts"):
            response = http.get(f"/runs/{run_id}/{route}", params={"path": path})
            assert response.status_code in (400, 404), (route, path)
            assert "run_id:" not in response.text and "root:" not in response.text
    assert http.get("/runs/..%2F..%2Fetc/artifact", params={"path": "passwd"}).status_code == 404
    assert http.get("/ui-static/..%2F..%2F__init__.py").status_code == 404
    assert http.get("/ui-static/../routes.py").status_code == 404


def test_raw_artifacts_never_run_in_this_origin(ui_server, http):
    run_id = ui_server.ids["long"]
    html = http.get(f"/runs/{run_id}/artifact", params={"path": "report.html"})
    assert html.headers["content-type"].startswith("text/plain")
    assert html.headers["content-security-policy"].startswith("sandbox;")
    framed = http.get(f"/runs/{run_id}/artifact", params={"path": "report.html", "frame": 1})
    assert framed.headers["content-type"].startswith("text/html")
    assert framed.headers["content-security-policy"].startswith("sandbox allow-scripts;")
    assert "allow-same-origin" not in framed.headers["content-security-policy"]
    image = http.get(f"/runs/{run_id}/artifact", params={"path": "plots/colors.png"})
    assert image.headers["content-type"] == "image/png" and image.content.startswith(b"\x89PNG")
    assert image.headers["content-disposition"].startswith("inline")
    download = http.get(f"/runs/{run_id}/artifact", params={"path": "logs/train.log", "download": 1})
    assert download.headers["content-disposition"] == "attachment; filename*=UTF-8''train.log"
    assert download.content.startswith(b"epoch 1")
    for response in (html, framed, image, download):
        assert response.headers["x-content-type-options"] == "nosniff"


def test_metric_data_is_downsampled_and_zoomable(ui_server, http):
    run_id = ui_server.ids["long"]
    api = f"/ui-api/runs/{run_id}/metric"
    full = http.get(api, params={"key": "loss"}).json()
    assert full["total"] == LONG_POINTS and full["downsampled"] and full["shown"] <= 2004
    assert full["x"][0] == 0 and full["x"][-1] == LONG_POINTS - 1
    zoom = http.get(api, params={"key": "loss", "xmin": 1000, "xmax": 1500}).json()
    assert not zoom["downsampled"] and zoom["shown"] == 503 and zoom["x"][1] == 1000
    timed = http.get(api, params={"key": "loss", "x": "time", "smoothing": 0.9, "points": 100}).json()
    assert timed["x"][0] == 1_700_000_000_000 and len(timed["smoothed"]) == timed["shown"] <= 104
    assert http.get(api, params={"key": "loss", "x": "epoch"}).status_code == 400
    assert http.get(api, params={"key": "loss", "smoothing": 1.5}).status_code == 400
    missing = http.get(api, params={"key": "nope"})
    assert missing.status_code == 404 and "no metric 'nope'" in missing.json()["message"]
    assert http.get("/ui-api/runs/0123456789abcdef0123456789abcdef/metric", params={"key": "loss"}).status_code == 404


def test_runs_table_pages_with_tokens_and_back(ui_server, http):
    exp = ui_server.ids["experiment_id"]
    everything = re.findall(r'<tr data-run-id="([0-9a-f]{32})"', http.get(f"/experiments/{exp}?max=1000&flat=1").text)
    assert len(everything) >= 10
    seen: list[str] = []
    url = f"/experiments/{exp}?max=3&flat=1"
    pages = []
    while url:
        html = http.get(url).text
        pages.append(url)
        seen += re.findall(r'<tr data-run-id="([0-9a-f]{32})"', html)
        nxt = re.search(r'href="([^"]+)" id="next-page"', html)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
    assert seen == everything and len(pages) == -(-len(everything) // 3)
    before_last = http.get(pages[-2]).text
    prev = re.search(r'href="([^"]+)" id="prev-page"', before_last).group(1).replace("&amp;", "&")
    back = len(pages) - 3
    assert re.findall(r'<tr data-run-id="([0-9a-f]{32})"', http.get(prev).text) == everything[back * 3:back * 3 + 3]
    assert parse_qs(urlsplit(prev).query)["max"] == ["3"]


def test_runs_table_sorts_filters_and_chooses_columns(ui_server, http):
    exp = ui_server.ids["experiment_id"]
    html = http.get(f"/experiments/{exp}", params={"order": "metrics.rmse ASC", "flat": "1",
                                                    "filter": "metrics.rmse >= 0.4", "c": "metrics.rmse"}).text
    values = [float(v) for v in re.findall(r'<td class="metrics">([0-9.]+)</td>', html)]
    assert values == sorted(values) and values[0] == 0.4 and len(values) >= 5 and 0.3 not in values
    assert 'title="metrics.rmse"' in html and 'title="params.learning_rate"' not in html
    bad = http.get(f"/experiments/{exp}", params={"filter": "metrics.rmse <<< 1"})
    assert bad.status_code == 200 and 'id="filter-error"' in bad.text and "metrics.rmse &lt;&lt;&lt; 1" in bad.text
    nested = http.get(f"/experiments/{exp}").text
    parent = ui_server.ids["parent"]
    for child in ui_server.ids["children"]:
        assert re.search(rf'<tr data-run-id="{child}" class="child collapsed\s*"\s+data-parent="{parent}"', nested)


def test_missing_things_are_404_pages(ui_server, http):
    for page in ("/runs/0123456789abcdef0123456789abcdef", "/experiments/424242", "/models/nope",
                 "/models/ui-model/versions/99", "/history/0123456789abcdef0123"):
        response = http.get(page)
        assert response.status_code == 404, page
        assert 'id="error-message"' in response.text
    assert http.get("/compare", params={"runs": ui_server.ids["long"]}).status_code == 400


def test_the_router_mounts_into_another_app_without_taking_its_route_names(ui_repo):
    """The REST server includes gitexp.ui.router at /; its own routes may be named `run` or
    `history`, and the UI's links must still point at the UI's pages."""
    import warnings

    from fastapi import FastAPI

    import gitexp.ui

    path, ids = ui_repo
    app = FastAPI()

    @app.get("/api/2.0/mlflow/runs/get", name="run")
    def run():  # pragma: no cover - only its name matters
        return {}

    @app.get("/api/history", name="history")
    def history():  # pragma: no cover
        return {}

    app.include_router(gitexp.ui.router(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from fastapi.testclient import TestClient

        client = TestClient(app, base_url="http://127.0.0.1")
        html = client.get(f"/experiments/{ids['experiment_id']}").text
    assert f'href="/runs/{ids["long"]}"' in html
    assert 'href="/history"' in html and "/api/2.0/mlflow/runs/get" not in html


def test_concurrent_requests_all_succeed(ui_server):
    """The compare page fetches every run's chart at once; pages and data share one Client."""
    from concurrent.futures import ThreadPoolExecutor

    ids = ui_server.ids
    urls = [f"/ui-api/runs/{r}/metric?key=rmse" for r in ids["children"]] * 3
    urls += [f"/ui-api/runs/{ids['long']}/metric?key=loss&xmin={i * 1000}&xmax={i * 1000 + 500}" for i in range(6)]
    urls += [f"/experiments/{ids['experiment_id']}", f"/runs/{ids['long']}", "/history", "/models/ui-model"] * 2
    with ui_server.http() as client, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda u: client.get(u).status_code, urls))
    assert statuses == [200] * len(urls)
