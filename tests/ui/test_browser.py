"""End to end in headless Chromium (Debian's package, driven by Playwright) against `gitexp ui`
on loopback: every page and every action, a screenshot of each page in test-artifacts/screenshots/."""

from __future__ import annotations

import os
import re

import pytest

from .conftest import SCREENSHOTS

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="needs Debian's chromium: `make browser` (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, ui_server):
    context = browser.new_context(base_url=ui_server.url, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("dialog", lambda dialog: dialog.accept())  # "Delete ...?" confirmations
    page.problems = problems
    yield page
    context.close()
    # A sandboxed artifact frame that tries to reach this page is expected to be blocked.
    unexpected = [p for p in problems if "__framed" not in p and "status of 404" not in p]
    assert not unexpected, unexpected


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def committed_by_ui_tester(server, subject_start: str) -> None:
    name, email, subject = server.last_commit()
    assert (name, email) == ("UI Tester", "ui-tester@example.com")
    assert subject.startswith(subject_start), subject


def test_experiments_list_and_create_experiment(page, ui_server):
    page.goto("/")
    assert page.locator("#experiments-table .experiment-link").all_inner_texts()[:3] == [
        "Default", "other-experiment", "tutorial"]
    shot(page, "01-experiments")
    page.fill("#create-experiment input[name=name]", "created-in-the-ui")
    page.click("#create-experiment button")
    page.wait_for_url(re.compile(r"/experiments/\d+\?flash=created"))
    assert page.inner_text("#experiment-name") == "created-in-the-ui"
    assert page.inner_text(".flash").startswith("Created.")
    committed_by_ui_tester(ui_server, "experiment 'created-in-the-ui': create")
    # Filter with MLflow's grammar; a broken filter says what is wrong.
    page.goto("/")
    page.fill("#experiment-filter input[name=filter]", "tags.`project_name` = 'ui-tests'")
    page.click("#experiment-filter button")
    assert page.locator("#experiments-table .experiment-link").all_inner_texts() == ["tutorial"]
    page.fill("#experiment-filter input[name=filter]", "name = ")
    page.click("#experiment-filter button")
    assert page.locator("#filter-error").is_visible()


def test_experiment_actions(page, ui_server):
    page.goto("/")
    page.fill("#create-experiment input[name=name]", "experiment-actions")
    page.click("#create-experiment button")
    page.wait_for_url(re.compile(r"flash=created"))
    page.click("#experiment-details summary")
    page.fill("#experiment-details textarea[name=note]", "What this experiment is for")
    page.click("#experiment-details form:has(textarea) button")
    page.wait_for_url(re.compile(r"flash=saved"))
    assert page.inner_text("#experiment-description") == "What this experiment is for"
    page.click("#experiment-details summary")
    page.fill("#experiment-details input[name=key]", "team")
    page.fill("#experiment-details input[name=value]", "vision")
    page.click("#experiment-details form:has(input[name=key]:not([type=hidden])) button")
    page.wait_for_url(re.compile(r"flash=tag-set"))
    page.click("#experiment-details summary")
    assert "team" in page.inner_text("#experiment-details table")
    shot(page, "20-experiment-details")
    page.click('#experiment-details form:has(input[type=hidden][value="team"]) button')
    page.wait_for_url(re.compile(r"flash=tag-deleted"))
    page.click("#experiment-details summary")
    page.fill("#experiment-details input[name=name]", "experiment-renamed")
    page.click("#experiment-details form:has(input[name=name]) button")
    page.wait_for_url(re.compile(r"flash=renamed"))
    assert page.inner_text("#experiment-name") == "experiment-renamed"
    committed_by_ui_tester(ui_server, "experiment 'experiment-actions': rename to 'experiment-renamed'")
    experiment_url = page.url.split("?")[0]
    page.click("#experiment-details summary")
    page.click("#experiment-details button.danger:has-text('Delete experiment')")
    page.wait_for_url(re.compile(r"flash=deleted"))
    assert "experiment-renamed" not in page.locator("#experiments-table").inner_text()
    page.goto("/?view=deleted")
    assert "experiment-renamed" in page.locator("#experiments-table").inner_text()
    page.goto(experiment_url)
    page.click("#experiment-details summary")
    page.click("#experiment-details button:has-text('Restore experiment')")
    page.wait_for_url(re.compile(r"flash=restored"))
    page.goto("/")
    assert "experiment-renamed" in page.locator("#experiments-table").inner_text()


def test_runs_table_nesting_filter_sort_columns_and_selection(page, ui_server):
    ids = ui_server.ids
    page.goto(f"/experiments/{ids['experiment_id']}")
    child = page.locator(f'tr[data-run-id="{ids["children"][0]}"]')
    assert child.is_hidden()
    page.click(f'button[data-toggle="{ids["parent"]}"]')
    assert child.is_visible()
    assert page.locator(f'tr[data-run-id="{ids["xss"]}"] .run-link').inner_text() == \
        "<script>window.__xss=1</script>evil-run"
    assert page.evaluate("window.__xss") is None
    shot(page, "02-runs-table")
    # Sort by a metric column: a header click sorts descending, a second ascending.
    page.click('a.sort[data-sort-key="metrics.rmse"]')
    page.wait_for_url(re.compile(r"order=metrics.rmse"))
    assert page.locator('a.sort[data-sort-key="metrics.rmse"]').inner_text().endswith("▼")
    page.click('a.sort[data-sort-key="metrics.rmse"]')
    assert page.locator('a.sort[data-sort-key="metrics.rmse"]').inner_text().endswith("▲")
    # The filter box (MLflow grammar), and its error.
    page.fill("#run-filter input[name=filter]", "params.booster = 'dart'")
    page.click("#run-filter button[type=submit]")
    names = page.locator("#runs-table .run-link").all_inner_texts()
    assert sorted(names) == ["trial-0", "trial-2"]
    page.fill("#run-filter input[name=filter]", "params.booster = dart")
    page.click("#run-filter button[type=submit]")
    assert "dart" in page.inner_text("#filter-error")
    shot(page, "03-runs-filter-error")
    # Column chooser: only the chosen columns, remembered for the next visit.
    page.goto(f"/experiments/{ids['experiment_id']}")
    page.click("#column-chooser summary")
    page.click("#column-chooser fieldset:nth-of-type(1) [data-check-none]")
    page.click("#column-chooser fieldset:nth-of-type(2) [data-check-none]")
    page.check('#column-chooser input[value="params.learning_rate"]')
    page.click("#column-chooser button[type=submit]")
    headers = page.locator("#runs-table thead th[title]").evaluate_all("els => els.map(e => e.title)")
    assert headers == ["params.learning_rate"]
    page.goto(f"/experiments/{ids['experiment_id']}")
    page.wait_for_url(re.compile(r"c=params.learning_rate"))
    # Select two runs: Compare and Diff open the views.
    page.check(f'.run-select[value="{ids["long"]}"]')
    assert page.is_disabled("#compare-selected")
    page.check(f'.run-select[value="{ids["dirty"]}"]')
    page.click("#diff-selected")
    page.wait_for_url(re.compile(r"/diff\?a="))
    assert page.inner_text("h1") == "Diff of two runs"


def test_runs_across_experiments(page, ui_server):
    page.goto("/")
    page.check(f'#experiments-table input[value="{ui_server.ids["experiment_id"]}"]')
    page.check(f'#experiments-table input[value="{ui_server.ids["other_experiment_id"]}"]')
    page.click("#compare-experiments")
    page.wait_for_url(re.compile(r"/runs\?e="))
    assert page.inner_text("h1") == "Runs of 2 experiments"
    assert "other-run" in page.locator("#runs-table .run-link").all_inner_texts()
    shot(page, "04-runs-across-experiments")


def test_delete_and_restore_runs_from_the_table(page, ui_server):
    ids = ui_server.ids
    gone = ids["action_runs"]["to-delete"]
    page.goto(f"/experiments/{ids['experiment_id']}?cols=1")
    page.check(f'.run-select[value="{gone}"]')
    page.click("#delete-selected")
    page.wait_for_url(re.compile(r"flash=deleted"))
    assert page.locator(f'tr[data-run-id="{gone}"]').count() == 0
    committed_by_ui_tester(ui_server, f"run {gone[:8]}: edit")
    back = ids["action_runs"]["to-restore"]
    page.goto(f"/experiments/{ids['experiment_id']}?view=deleted&cols=1")
    assert page.locator(f'tr[data-run-id="{back}"]').count() == 1
    shot(page, "05-deleted-runs")
    page.check(f'.run-select[value="{back}"]')
    page.click("#delete-selected")   # the button restores in the deleted view
    page.wait_for_url(re.compile(r"flash=restored"))
    page.goto(f"/experiments/{ids['experiment_id']}?cols=1")
    assert page.locator(f'tr[data-run-id="{back}"]').count() == 1


def test_run_page_with_charts_zoom_axes_and_smoothing(page, ui_server):
    run_id = ui_server.ids["long"]
    page.goto(f"/runs/{run_id}")
    page.wait_for_selector("#metric-charts[data-ready='1']")
    chart = page.locator('.chart[data-metric="loss"]')
    assert int(chart.get_attribute("data-total")) == 20000
    assert int(chart.get_attribute("data-points")) <= 2004
    assert "points in view shown (20,000 logged)" in page.inner_text('[data-note-for="loss"]')
    assert page.inner_text("#datasets-table") .count("train-set") == 1
    assert "learning_rate" not in page.inner_text("#params")
    shot(page, "06-run")
    # Zoom: the server sends the visible range at full detail.
    page.evaluate("""() => Plotly.relayout(document.querySelector('.chart[data-metric="loss"]'),
                                           {'xaxis.range[0]': 100, 'xaxis.range[1]': 600})""")
    page.wait_for_function("""() => Number(document.querySelector('.chart[data-metric="loss"]').dataset.points)
                                    < 600""")
    assert 500 <= int(chart.get_attribute("data-points")) <= 503
    assert page.inner_text('[data-note-for="loss"]') == "all 503 points in view (20,000 logged)"
    shot(page, "07-run-chart-zoomed")
    page.dblclick('.chart[data-metric="loss"] .nsewdrag')
    page.wait_for_function("""() => Number(document.querySelector('.chart[data-metric="loss"]').dataset.points)
                                    > 1000""")
    page.select_option("#x-axis", "relative")
    page.wait_for_function("""() => document.querySelector('.chart[data-metric="loss"] .xtitle')
                                    .textContent.includes('seconds')""")
    page.fill("#smoothing", "0.9")
    page.dispatch_event("#smoothing", "input")
    page.wait_for_function("""() => document.querySelector('.chart[data-metric="loss"]').data.length === 2""")
    page.check("#log-y")
    page.wait_for_function("""() => document.querySelector('.chart[data-metric="loss"]').layout.yaxis.type === 'log'""")


def test_run_page_edits_are_commits(page, ui_server):
    ids = ui_server.ids
    run_id = ids["action_runs"]["to-rename"]
    page.goto(f"/runs/{run_id}")
    page.fill("#rename-run input[name=name]", "renamed-in-ui")
    page.click("#rename-run button")
    page.wait_for_url(re.compile(r"flash=renamed"))
    assert page.inner_text("#run-name") == "renamed-in-ui"
    committed_by_ui_tester(ui_server, f"run {run_id[:8]}: edit")
    run_id = ids["action_runs"]["to-note"]
    page.goto(f"/runs/{run_id}")
    page.fill("#run-note textarea", "Best so far <b>really</b>")
    page.click("#run-note button")
    page.wait_for_url(re.compile(r"flash=saved"))
    assert page.input_value("#run-note textarea") == "Best so far <b>really</b>"
    page.fill("#set-run-tag input[name=key]", "reviewer")
    page.fill("#set-run-tag input[name=value]", "<i>ana</i>")
    page.click("#set-run-tag button")
    page.wait_for_url(re.compile(r"flash=tag-set"))
    assert "reviewer\t<i>ana</i>" in page.inner_text("#tags")
    page.click('#tags form:has(input[value="reviewer"]) button')
    page.wait_for_url(re.compile(r"flash=tag-deleted"))
    assert "reviewer" not in page.inner_text("#tags")
    page.click("#delete-run")
    page.wait_for_url(re.compile(r"flash=deleted"))
    page.click("#restore-run")
    page.wait_for_url(re.compile(r"flash=restored"))
    assert page.locator("#delete-run").is_visible()
    page.goto(f"/runs/{ids['parent']}")
    assert page.locator("#child-runs a").count() == 3
    page.goto(f"/runs/{ids['children'][0]}")
    assert page.inner_text("#parent-run") == "search"


def test_run_code_version_and_diff_including_code(page, ui_server):
    ids = ui_server.ids
    page.goto(f"/runs/{ids['dirty']}#code")
    assert "+learning_rate = 0.3  # tuned" in page.inner_text("#run-patch")
    shot(page, "08-run-code")
    page.goto(f"/diff?a={ids['long']}&b={ids['dirty']}")
    assert "+learning_rate = 0.3  # tuned" in page.inner_text("#code-patch")
    assert "learning_rate" in page.inner_text("#diff-params")
    shot(page, "09-diff")
    page.goto(f"/diff?a={ids['long']}&b={ids['xss']}")
    assert page.inner_text("#code-identical") == "Both runs ran exactly the same code."


def test_artifact_browser_previews(page, ui_server):
    run_id = ui_server.ids["long"]
    base = f"/runs/{run_id}/artifacts?path="
    page.goto(base + "logs/train.log")
    assert "<b>not bold</b>" in page.inner_text("#text-preview")
    shot(page, "10-artifact-text")
    page.goto(base + "config.json")
    assert '"activation": "relu"' in page.inner_text("#text-preview")
    page.goto(base + "importance.csv")
    assert page.locator("#table-preview th").all_inner_texts() == ["feature", "importance"]
    page.goto(base + "plots/colors.png")
    page.wait_for_function("() => document.querySelector('#image-preview').naturalWidth === 48")
    shot(page, "11-artifact-image")
    page.goto(base + "report.html")
    frame = page.frame_locator("iframe.artifact-frame")
    assert frame.locator("h1").inner_text() == "report"
    assert page.evaluate("window.__framed") is None   # the frame's script could not reach this page
    page.goto(base + "blob.bin")
    assert page.locator("#binary-note").is_visible()
    page.goto(base + "model")
    assert "sklearn" in page.inner_text("#mlmodel-preview")
    assert f"runs:/{run_id}/model" in page.inner_text("#mlmodel-preview")
    shot(page, "12-artifact-model")
    with page.expect_download() as download:
        page.goto(base + "logs/train.log")
        page.click("#download-link")
    assert download.value.suggested_filename == "train.log"


def test_register_a_runs_model(page, ui_server):
    run_id = ui_server.ids["long"]
    page.goto(f"/runs/{run_id}/artifacts?path=model")
    page.fill("#register-form input[name=name]", "registered-from-ui")
    page.click("#register-form button")
    page.wait_for_url(re.compile(r"/models/registered-from-ui/versions/1\?flash=registered"))
    info = page.inner_text("#version-info")
    assert f"runs:/{run_id}/model" in info and "Source run\tlong-training" in info
    committed_by_ui_tester(ui_server, "registry 'registered-from-ui': register a version")
    page.goto(f"/runs/{run_id}/artifacts?path=model")
    page.fill("#register-form input[name=name]", "registered-from-ui")
    page.click("#register-form button")
    page.wait_for_url(re.compile(r"/versions/2\?"))


def test_compare_view_plots_and_differences_only(page, ui_server):
    ids = ui_server.ids
    runs = "&".join(f"runs={r}" for r in ids["children"])
    page.goto(f"/compare?{runs}")
    page.wait_for_selector("#plots[data-ready='1']")
    for plot in ("plot-parallel", "plot-scatter", "plot-contour", "plot-box", "plot-history"):
        assert page.locator(f"#{plot} .main-svg").count() >= 1, plot
    assert page.evaluate("document.getElementById('plot-history').data.length") == 3
    assert page.evaluate("document.getElementById('plot-parallel').data[0].type") == "parcoords"
    shot(page, "13-compare")
    same_row = page.locator("#compare-table tr.same").first
    assert same_row.is_visible()
    page.check("#diff-only")
    assert same_row.is_hidden()
    assert page.locator("#compare-table tr.differs").first.is_visible()
    page.select_option("#scatter-y", "params.max_depth")
    page.wait_for_function("() => document.getElementById('plot-scatter').layout.yaxis.title.text"
                           " === 'params.max_depth'")


def test_registry_pages_and_actions(page, ui_server):
    page.goto("/models")
    assert "ui-model" in page.locator("#models-table .model-link").all_inner_texts()
    shot(page, "14-models")
    page.goto("/models/actions-model")
    page.fill("#model-description textarea", "Edited in the UI")
    page.click("#model-description button")
    page.wait_for_url(re.compile(r"flash=saved"))
    assert page.input_value("#model-description textarea") == "Edited in the UI"
    committed_by_ui_tester(ui_server, "registry 'actions-model'")
    page.fill("#set-model-tag input[name=key]", "owner")
    page.fill("#set-model-tag input[name=value]", "ml-team")
    page.click("#set-model-tag button")
    page.wait_for_url(re.compile(r"flash=tag-set"))
    assert "owner" in page.inner_text("#model-tags")
    page.click('#model-tags form:has(input[value="owner"]) button')
    page.wait_for_url(re.compile(r"flash=tag-deleted"))
    page.fill("#set-alias input[name=alias]", "champion")
    page.select_option("#set-alias select", "2")
    page.click("#set-alias button")
    page.wait_for_url(re.compile(r"flash=alias-set"))
    assert "@champion" in page.inner_text("#model-aliases")
    shot(page, "15-model")
    page.click('#model-aliases form:has(input[value="champion"]) button')
    page.wait_for_url(re.compile(r"flash=alias-deleted"))
    assert "@champion" not in page.inner_text("#model-aliases")
    # A version: stages (archiving the one already in Staging), alias, description, tags.
    page.goto("/models/actions-model/versions/1")
    page.select_option("#transition-stage select", "Staging")
    page.click("#transition-stage button")
    page.wait_for_url(re.compile(r"flash=stage"))
    page.goto("/models/actions-model/versions/2")
    page.select_option("#transition-stage select", "Staging")
    page.check("#transition-stage input[name=archive_existing_versions]")
    page.click("#transition-stage button")
    page.wait_for_url(re.compile(r"flash=stage"))
    assert page.inner_text("#current-stage") == "Staging"
    page.goto("/models/actions-model/versions/1")
    assert page.inner_text("#current-stage") == "Archived"
    page.fill("#version-alias input[name=alias]", "previous")
    page.click("#version-alias button")
    page.wait_for_url(re.compile(r"/versions/1\?flash=alias-set"))
    page.fill("#version-description textarea", "First try")
    page.click("#version-description button")
    page.wait_for_url(re.compile(r"flash=saved"))
    page.fill("#set-version-tag input[name=key]", "validated")
    page.fill("#set-version-tag input[name=value]", "true")
    page.click("#set-version-tag button")
    page.wait_for_url(re.compile(r"flash=tag-set"))
    page.click('#version-tags form:has(input[value="validated"]) button')
    page.wait_for_url(re.compile(r"flash=tag-deleted"))
    history = page.inner_text("#audit-history")
    for change in ("delete version tag", "set version tag", "update version", "set alias", "transition stage"):
        assert f"UI Tester\t{change}\t1" in history, change
    assert "UI Tester\ttransition stage\t2\tNone -> Staging; archived version(s) 1" in history
    shot(page, "16-model-version")
    page.goto("/models/actions-model/versions/2")
    assert "None -> Staging; archived version(s) 1" in page.inner_text("#audit-history")


def test_history_of_the_tracking_branch(page, ui_server):
    page.goto("/history")
    first = page.locator("#history-table tbody tr").first
    assert "UI Tester" in first.inner_text() or "Test Author" in first.inner_text()
    shot(page, "17-history")
    run_id = ui_server.ids["long"]
    page.goto(f"/history?run={run_id}")
    assert page.locator("#following").is_visible()
    assert page.locator("#history-table tbody tr").count() >= 1
    page.locator("#history-table .commit-link").last.click()
    page.wait_for_url(re.compile(r"/history/[0-9a-f]{40}"))
    assert "params.yaml" in page.inner_text("main")
    assert "+epochs:" in page.inner_text("main")
    shot(page, "18-commit")


def test_error_page(page, ui_server):
    response = page.goto("/runs/0123456789abcdef0123456789abcdef")
    assert response.status == 404
    assert "0123456789abcdef0123456789abcdef" in page.inner_text("#error-message")
    shot(page, "19-error")


def test_hostile_strings_stay_text_on_every_page(page, ui_server):
    ids = ui_server.ids
    for url in (f"/runs/{ids['xss']}", f"/compare?runs={ids['xss']}&runs={ids['long']}",
                f"/diff?a={ids['xss']}&b={ids['long']}", f"/history?run={ids['xss']}"):
        page.goto(url)
        assert page.evaluate("window.__xss") is None, url
        assert "<script>window.__xss=1</script>evil-run" in page.inner_text("main"), url
        if url.startswith("/compare"):  # two runs: too few points for a contour, said so
            assert "A contour needs at least 3 runs" in page.inner_text("#plot-contour")
    page.goto(f"/runs/{ids['xss']}")
    assert '<img src=x onerror="window.__xss=2">' in page.inner_text("#tags")
    assert "</td><script>window.__xss=3</script>" in page.inner_text("#params")
    shot(page, "21-hostile-run")
