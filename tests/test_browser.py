"""The UI in a real browser: `tutor serve` in a subprocess, driven by Debian's Chromium via Playwright.

Screenshots are saved in test-artifacts/ (or $TUTOR_TEST_ARTIFACTS) for people to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from .conftest import INTRANET, ROOT, TOKEN

ARTIFACTS = Path(os.environ.get("TUTOR_TEST_ARTIFACTS", ROOT / "test-artifacts"))
# Flags this sandbox needs: no GPU, no sandboxing as root, and no background calls to a closed network.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The intranet page of the framing test is served by Playwright from a made-up public origin;
    # Chrome would block its frame of a loopback server (a real intranet page is not public).
    "--disable-features=LocalNetworkAccessChecks",
]
ANSWER_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(chromium).exists(), "Debian's chromium is needed: apt-get install chromium (make test does)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, server: tuple[str, Path]) -> Iterator[Page]:
    opened = browser.new_page(viewport={"width": 1400, "height": 1000})
    opened.goto(server[0])
    expect(opened.locator("#question textarea")).to_be_visible(timeout=30_000)
    yield opened
    opened.close()


def _ask(page: Page, question: str, turn: int) -> None:
    """Type a question and press Enter (keyboard only); wait until that turn's attribution is shown."""
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    expect(page.locator(f'#why .why[data-turn="{turn}"] .layer-bar')).to_be_visible(timeout=ANSWER_TIMEOUT_MS)


def _shares(page: Page, scope: str) -> dict[str, int]:
    legend = page.locator(f"{scope} .legend").inner_text()
    found = dict(re.findall(r"(system prompt|passages|model's own knowledge): (\d+)%", legend))
    assert len(found) == 3, legend
    return {name: int(value) for name, value in found.items()}


def _screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_chat_answer_with_citations_passages_and_layer_shares(page: Page) -> None:
    _ask(page, "What are the five layers of AI model training?", turn=1)
    expect(page.locator("#chat")).to_contain_text("pre-training", ignore_case=True)
    shares = _shares(page, "#why")
    assert 98 <= sum(shares.values()) <= 102 and shares["passages"] > 50, shares
    expect(page.locator("#why .passage")).not_to_have_count(0)
    expect(page.locator("#why .verdict")).to_contain_text("from the guides")
    expect(page.locator("#why .sentence.guided")).not_to_have_count(0)
    # A citation in the answer opens and highlights its passage in the panel.
    citation = page.locator("#chat a[href^='#passage-1-']").first
    expect(citation).to_be_visible()
    citation.click()
    expect(page.locator("#why .passage.flash")).to_have_count(1)
    # The full prompt, coloured by layer, and the steps in plain words.
    page.locator("#why details.full-prompt summary").click()
    expect(page.locator("#why details.full-prompt .part-system")).to_contain_text("tutor for staff")
    expect(page.locator("#why .part-passages")).to_contain_text("Passages from the guides")
    page.locator("#why details.steps summary").click()
    expect(page.locator("#why details.steps")).to_contain_text("Search query")
    _screenshot(page, "chat-answer-and-panel")

    # A follow-up is searched together with the previous question and its answer's first sentence.
    _ask(page, "Which of them change the model itself?", turn=2)
    expect(page.locator("#why details.steps")).to_contain_text(
        "joined to the previous question and the first sentence of its answer"
    )
    _screenshot(page, "chat-follow-up")


def test_retrieval_off_shows_no_passage_share(page: Page) -> None:
    page.locator("#retrieval input").uncheck()
    _ask(page, "What is pre-training?", turn=1)
    assert _shares(page, "#why")["passages"] == 0
    expect(page.locator("#why .verdict")).to_contain_text("Retrieval was off")


def test_bad_input_gets_a_visible_message(page: Page) -> None:
    """The page's part of the bad-input matrix; the preset and k are picked from bounded controls."""
    box = page.locator("#question textarea")
    page.locator("#ask").click()
    expect(page.locator("#notice")).to_contain_text("the question is empty")
    for text, message in [
        (" \n\t ", "the question is empty"),
        ("why " * 800, "3199 characters long"),
        ("why " * 262_144, "1048575 characters long"),  # 1 MB
        ("what is \x01\x02 RAG?", "not plain text"),
    ]:
        box.fill(text)
        page.locator("#ask").click()
        expect(page.locator("#notice")).to_contain_text(message)
        _screenshot(page, "bad-input")
        page.locator("#question textarea").fill("")
    assert "Traceback" not in page.content()
    _ask(page, "What is RLHF?", turn=1)  # still answering


def test_feedback_export_and_large_text(page: Page, server: tuple[str, Path]) -> None:
    _ask(page, "What is RLHF?", turn=1)
    page.locator("#chat button[aria-label='Like']").last.click()
    expect(page.locator("#notice")).to_contain_text("rating is saved")
    records = [json.loads(line) for line in (server[1] / "feedback.jsonl").read_text().splitlines()]
    assert records[-1]["liked"] is True and records[-1]["question"] == "What is RLHF?"
    page.get_by_text("Feedback and export").click()
    page.locator("#export").click()
    markdown_link = page.locator("#exported a[href$='conversation.md']")
    expect(markdown_link).to_have_count(1)
    markdown = page.request.get(str(markdown_link.get_attribute("href"))).text()
    assert markdown.startswith("# Tutor conversation") and "## What is RLHF?" in markdown
    json_link = page.locator("#exported a[href$='conversation.json']")
    exported = json.loads(page.request.get(str(json_link.get_attribute("href"))).text())
    assert exported[0]["question"] == "What is RLHF?" and exported[0]["attribution"]["method"]
    page.locator("#large-text input").check()
    expect(page.locator("html")).to_have_class(re.compile("tutor-large"))
    _screenshot(page, "large-text")


def test_compare_mode_answers_four_ways_with_attribution(page: Page) -> None:
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-question textarea").fill("What are the five layers of AI model training?")
    page.locator("#compare-run").click()
    for way in range(4):
        expect(page.locator(f"#compare-{way} .layer-bar")).to_be_visible(timeout=2 * ANSWER_TIMEOUT_MS)
    alone = _shares(page, "#compare-0")
    assert alone["passages"] == 0 and alone["system prompt"] == 0 and alone["model's own knowledge"] == 100
    assert _shares(page, "#compare-3")["passages"] > 50
    _screenshot(page, "compare-four-ways")


def _metric(url: str, name: str) -> float:
    text = httpx.get(url + "metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    return float(re.search(rf"^{name} (\S+)$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]


def test_login_form_then_the_embedded_chat(browser: Browser, guarded: tuple[str, Path]) -> None:
    url = guarded[0]
    page = browser.new_page(viewport={"width": 480, "height": 720})
    page.goto(url + "embed/")
    expect(page.get_by_label("Access token")).to_be_visible()
    page.get_by_label("Access token").fill("a wrong token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not right")
    page.get_by_label("Access token").fill(TOKEN)
    page.get_by_label("Access token").press("Enter")
    box = page.locator("#question textarea")
    expect(box).to_be_visible(timeout=30_000)
    assert page.url.rstrip("/").endswith("/embed")
    expect(page.get_by_role("tab", name="Compare")).to_have_count(0)  # chat only
    expect(page.locator("#why")).to_have_count(0)
    box.fill("What is RLHF?")
    box.press("Enter")
    expect(page.locator("#chat")).to_contain_text("Shaped by:", timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#chat")).to_contain_text("Sources: [1]")
    _screenshot(page, "embed-chat")
    page.close()


INTRANET_PAGE = (
    '<!doctype html><title>Intranet</title><h1>Our intranet</h1><iframe src="{src}" width="460" height="640"></iframe>'
)


def test_an_allowed_intranet_page_can_frame_the_tutor_and_others_cannot(
    browser: Browser, guarded: tuple[str, Path]
) -> None:
    """The intranet's origin is in TUTOR_FRAME_ANCESTORS; another origin's frame is blocked by the
    browser. The SSO proxy's header signs the user in."""
    url = guarded[0]
    context = browser.new_context(extra_http_headers={"X-Forwarded-User": "dana"})
    page = context.new_page()
    for origin in (INTRANET, "http://elsewhere.example"):
        page.route(
            f"{origin}/**",
            lambda route: route.fulfill(body=INTRANET_PAGE.format(src=url + "embed/"), content_type="text/html"),
        )
    page.goto(INTRANET + "/")
    framed = page.frame_locator("iframe")
    expect(framed.locator("#question textarea")).to_be_visible(timeout=30_000)
    framed.locator("#question textarea").fill("What is pre-training?")
    framed.locator("#question textarea").press("Enter")
    expect(framed.locator("#chat")).to_contain_text("Shaped by:", timeout=ANSWER_TIMEOUT_MS)
    _screenshot(page, "embed-in-intranet-page")
    history = httpx.get(url + "api/history", headers={"X-Forwarded-User": "dana"}).json()["history"]
    assert [item["question"] for item in history] == ["What is pre-training?"]

    page.goto("http://elsewhere.example/")
    page.wait_for_timeout(3000)
    expect(page.frame_locator("iframe").locator("#question textarea")).to_have_count(0)
    context.close()


def test_a_second_user_sees_the_busy_line_and_then_the_answer(browser: Browser, guarded: tuple[str, Path]) -> None:
    url = guarded[0]
    context = browser.new_context(extra_http_headers={"X-Forwarded-User": "erin"})
    first, second = context.new_page(), context.new_page()
    for page in (first, second):
        page.goto(url)
        expect(page.locator("#question textarea")).to_be_visible(timeout=30_000)
    first.locator("#question textarea").fill("Explain the five layers of AI model training in detail.")
    first.locator("#question textarea").press("Enter")
    expect(first.locator("#chat .bot").last).to_contain_text("pre", ignore_case=True, timeout=ANSWER_TIMEOUT_MS)
    second.locator("#question textarea").fill("What is RLHF?")
    second.locator("#question textarea").press("Enter")
    expect(second.locator("#chat")).to_contain_text("1 question ahead of you")
    _screenshot(second, "busy-line")
    expect(second.locator('#why .why[data-turn="1"] .layer-bar')).to_be_visible(timeout=2 * ANSWER_TIMEOUT_MS)
    expect(second.locator("#chat")).not_to_contain_text("ahead of you")
    # Per-user feedback: the rating is saved with the SSO user's name.
    second.locator("#chat button[aria-label='Like']").last.click()
    expect(second.locator("#notice")).to_contain_text("rating is saved")
    records = [json.loads(line) for line in (guarded[1] / "data" / "feedback.jsonl").read_text().splitlines()]
    assert records[-1]["user"] == "erin" and records[-1]["question"] == "What is RLHF?"
    second.reload()  # the user's history comes back with the page
    expect(second.locator("#history")).to_contain_text("Your earlier questions")
    expect(second.locator("#history")).to_contain_text("What is RLHF?")
    context.close()


def test_closing_the_page_mid_answer_frees_the_model(browser: Browser, guarded: tuple[str, Path]) -> None:
    url = guarded[0]
    page = browser.new_page(extra_http_headers={"Authorization": f"Bearer {TOKEN}"})
    page.goto(url)
    page.locator("#question textarea").fill("Explain the five layers of AI model training in detail.")
    page.locator("#question textarea").press("Enter")
    expect(page.locator("#chat .bot").last).to_contain_text("pre", ignore_case=True, timeout=ANSWER_TIMEOUT_MS)
    page.close()
    for _ in range(300):
        if _metric(url, "tutor_model_busy") == 0:
            break
        time.sleep(0.1)
    assert _metric(url, "tutor_model_busy") == 0 and _metric(url, "tutor_queue_waiting") == 0
