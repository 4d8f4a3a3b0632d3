"""report.html in a real headless Chromium without network: the metrics it shows, its
filters, an example's verdicts side by side, and hostile text shown as text."""

from __future__ import annotations

import json
import math

from selenium.webdriver.common.by import By

from icrm_sgl.evaluation.metrics import record_judge
from tests.report.conftest import HOSTILE


def _open(browser, folder):
    browser.get((folder / "report.html").resolve().as_uri())
    return browser


def _visible(browser) -> list[str]:
    rows = browser.find_elements(By.CSS_SELECTOR, "#examples tbody tr")
    return [row.find_element(By.TAG_NAME, "td").text for row in rows if row.is_displayed()]


def _fields(card) -> list[str]:
    """The verdict field names a card shows, in order."""
    keys = card.find_elements(By.CSS_SELECTOR, ".fields > .field > .key")
    return [key.text.removesuffix(":") for key in keys]


def _cards(page, row: int):
    """Click the examples table's row ``row``; the verdict cards it opens."""
    page.find_elements(By.CSS_SELECTOR, "#examples tbody tr")[row].click()
    return page.find_elements(By.CSS_SELECTOR, "#detail .verdict")


def _metric(metrics: dict, name: str):
    kind, section, key = name.split("|")
    report = metrics["reconciliations"][kind]
    return (report["overall"] if section == "overall" else report["per_subset"][section])[key]


def test_page_shows_metrics_json_filters_and_both_orders(browser, eval_folders, tmp_path):
    folder = eval_folders["finished"]
    page = _open(browser, folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    cells = page.find_elements(By.CSS_SELECTOR, "td[data-metric]")
    assert len(cells) > 20
    for cell in cells:
        want = _metric(metrics, cell.get_attribute("data-metric"))
        shown = cell.text
        assert (shown == "-") if want is None else math.isclose(float(shown), want), cell
    settings = page.find_element(By.ID, "settings").text
    assert metrics["judge"]["fingerprint"] in settings and "judge name" in settings
    records = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    every = [r["id"] for r in records]
    assert _visible(page) == every
    checks = {
        "f-miss": [r["id"] for r in records if not r["margin"] > 0],
        "f-fail": [r["id"] for r in records if r["failed"]],
    }
    for box, want in checks.items():
        page.find_element(By.ID, box).click()
        assert _visible(page) == want, box
        page.find_element(By.ID, box).click()
    page.find_element(By.CSS_SELECTOR, "#f-section option[value='hard']").click()
    assert _visible(page) == ["p3"]
    page.find_element(By.CSS_SELECTOR, "#f-section option[value='']").click()
    assert _visible(page) == every
    page.find_elements(By.CSS_SELECTOR, "#examples tbody tr")[0].click()
    cards = page.find_elements(By.CSS_SELECTOR, "#detail .verdict")
    assert [c.find_element(By.TAG_NAME, "h3").text for c in cards] == [
        "chosen_first",
        "rejected_first",
    ]
    keys = record_judge(records[0]["mode"]).keys
    for card, judgement in zip(cards, records[0]["judgements"], strict=True):
        assert f"choice: {judgement['choice']}" in card.text
        assert len(card.find_elements(By.CSS_SELECTOR, ".bar")) == len(judgement["probabilities"])
        verdict = judgement["verdict"]  # the whole verdict, in the judge's field order
        assert _fields(card) == [key for key in keys if key in verdict]
        assert verdict["analysis of A"].strip() in card.text
    assert "What is 3 + 4?" in page.find_element(By.ID, "detail").text
    resources = page.execute_script("return performance.getEntriesByType('resource').length")
    assert resources == 0
    html = (folder / "report.html").read_text()
    assert "src=" not in html.lower().replace("img-src", "") and "<link" not in html
    page.save_screenshot(str(tmp_path / "report.png"))
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_hostile_text_is_shown_not_run(browser, hostile_folder):
    page = _open(browser, hostile_folder)
    page.find_elements(By.CSS_SELECTOR, "#examples tbody tr")[0].click()
    assert page.execute_script("return window.__pwned") is None
    detail = page.find_element(By.ID, "detail")
    assert not detail.find_elements(By.TAG_NAME, "img")
    assert not page.find_elements(By.CSS_SELECTOR, "#detail script")
    shown = page.execute_script("return document.getElementById('detail').textContent")
    readable = HOSTILE.replace("\ud800", "\ufffd")
    assert shown.count(readable) == 2  # in the verdict's field and in the chosen reply
    assert page.find_element(By.ID, "status").text == "finished"


def test_in_progress_page_computes_its_metrics(browser, eval_folders, run_cli):
    folder = eval_folders["progress"]
    assert run_cli("report", folder).returncode == 0
    page = _open(browser, folder)
    assert page.find_element(By.ID, "status").text == "in progress"
    assert _visible(page) == ["p0"]
    cell = page.find_element(By.CSS_SELECTOR, "td[data-metric='choice|overall|n']")
    assert cell.text == "1"
    cards = _cards(page, 0)  # a record written before eval kept whole verdicts
    assert len(cards) == 2 and all(not _fields(c) and "choice: " in c.text for c in cards)


def test_custom_judge_and_panel_show_their_own_fields(browser, rubric_folder, panel_folder):
    """A rubric's fields in its program's order, each order's explanation in its column; a
    panel's column per member and reply with the member's verdict."""
    page = _open(browser, rubric_folder)
    record = json.loads((rubric_folder / "results.jsonl").read_text().splitlines()[0])
    cards = _cards(page, 0)
    assert len(cards) == 2
    for card, judgement in zip(cards, record["judgements"], strict=True):
        assert _fields(card) == list(judgement["verdict"]) == ["explanation", "verdict"]
        assert judgement["verdict"]["explanation"].strip() in card.text
        assert f"verdict: {judgement['verdict']['verdict']}" in card.text
    page = _open(browser, panel_folder)
    cards = _cards(page, 1)
    titles = [c.find_element(By.TAG_NAME, "h3").text for c in cards]
    assert titles == [
        f"member {k}: rater_{m} ({side})"
        for k, m in ((1, "a"), (2, "b"))
        for side in ("chosen", "rejected")
    ]
    assert [_fields(c) for c in cards] == [["reason", "score"]] * 4
    assert "reason: rater_b on rejected p1" in cards[3].text and "score: 1" in cards[3].text
