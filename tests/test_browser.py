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
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tutor.records import user_file_name
from tutor.web.render import ends_a_sentence

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


def _screenshot(page: Page, name: str, *, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


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
    expect(page.locator("#why .part-passages")).to_contain_text("Passages quoted from the guides")
    page.locator("#why details.steps summary").click()
    expect(page.locator("#why details.steps")).to_contain_text("Search query")
    _screenshot(page, "chat-answer-and-panel")

    # Plain words first: the figures (support, similarity, the method) are behind "Details".
    plain = page.locator("#why .why").evaluate(
        "(el) => [...el.children].filter((c) => c.tagName !== 'DETAILS').map((c) => c.innerText).join(' ')"
    )
    assert "support 0." not in plain and "likelihood" not in plain and "similarity" not in plain, plain
    expect(page.locator("#why details.figures table")).to_be_hidden()
    page.locator("#why details.figures summary").click()
    expect(page.locator("#why details.figures")).to_contain_text("similarity")
    expect(page.locator("#why details.figures")).to_contain_text("log-likelihood")

    # A follow-up is searched together with the previous question and its answer's first sentence.
    _ask(page, "Which of them change the model itself?", turn=2)
    expect(page.locator("#why details.steps")).to_contain_text(
        "joined to the previous question and the first sentence of its answer"
    )
    expect(page.locator("#why .explains")).to_contain_text("Which of them change the model itself?")
    _screenshot(page, "chat-follow-up")

    # One click on a citation of the first answer: the panel explains that answer, says so, marks
    # it in the chat and highlights the passage.
    page.locator("#chat a[href^='#passage-1-']").first.click()
    expect(page.locator('#why .why[data-turn="1"]')).to_have_count(1)
    expect(page.locator("#why .passage.flash")).to_have_count(1)
    expect(page.locator("#why .explains")).to_contain_text("What are the five layers of AI model training?")
    expect(page.locator("#chat .message.bot.explained")).to_have_count(1)
    assert page.locator("#chat .message.bot").first.evaluate("(el) => el.classList.contains('explained')")

    # Copying an answer (its copy button, or a selection) gives plain text with [n], not the link.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.locator("#chat .message-row.bot-row").first.hover()
    page.locator("#chat button[aria-label='Copy message']").nth(1).click()  # [0] is the first question's
    copied = page.evaluate("navigator.clipboard.readText()")
    assert re.search(r"\[\d\]", copied) and "](#passage" not in copied, copied
    page.locator("#chat .message.bot").first.evaluate(
        "(el) => { const r = document.createRange(); r.selectNodeContents(el); const s = getSelection(); "
        "s.removeAllRanges(); s.addRange(r); }"
    )
    page.keyboard.press("Control+C")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "pre-training" in copied.lower() and "](#passage" not in copied, copied


def test_retrieval_off_shows_no_passage_share(page: Page) -> None:
    page.get_by_text("Settings").click()  # folded by default
    page.locator("#retrieval input").uncheck()
    _ask(page, "What is pre-training?", turn=1)
    assert _shares(page, "#why")["passages"] == 0
    expect(page.locator("#why .verdict")).to_contain_text("Retrieval was off")


def _in_viewport(page: Page, selector: str, *, whole: bool = True) -> bool:
    """The element is on screen: whole, or (a long message) at least its start."""
    box = page.locator(selector).first.bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    bottom = box["y"] + (box["height"] if whole else min(box["height"], 40))
    return box["y"] >= 0 and bottom <= size["height"] and box["x"] >= 0 and box["x"] + box["width"] <= size["width"]


def test_bad_input_gets_a_visible_message(page: Page) -> None:
    """The page's part of the bad-input matrix; the preset and k are picked from bounded controls.
    The reason shows by the box at 1366×768, the question stays to be fixed, typing clears it."""
    page.set_viewport_size({"width": 1366, "height": 768})
    box = page.locator("#question textarea")
    error = page.locator("#question-error")
    page.locator("#ask").click()
    expect(error).to_contain_text("the question is empty")
    for text, message in [
        (" \n\t ", "the question is empty"),
        ("why " * 800, "3199 characters long"),
        ("why " * 262_144, "1048575 characters long"),  # 1 MB
        ("what is \x01\x02 RAG?", "not plain text"),
    ]:
        box.fill(text)
        page.locator("#ask").click()
        expect(error).to_contain_text(message)
        assert _in_viewport(page, "#question-error"), "the error is below the fold"
        _screenshot(page, "bad-input")
        assert box.input_value(), "the question was cleared"  # kept, to be fixed
        box.press_sequentially("x")  # typing clears the error
        expect(error).to_be_hidden()
        box.fill("")
    assert "Traceback" not in page.content()
    _ask(page, "What is RLHF?", turn=1)  # still answering


def test_feedback_and_export(page: Page, server: tuple[str, Path]) -> None:
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


def _no_horizontal_overflow(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.evaluate("window.innerWidth"), f"the page is {width} px wide"


def _column_boxes(page: Page) -> list[dict[str, float]]:
    boxes = [page.locator(f"#compare-{way}").bounding_box() for way in range(4)]
    assert all(boxes)
    return boxes  # type: ignore[return-value]


def test_compare_on_a_projector_with_drawers_cut_marks_and_steps(page: Page) -> None:
    """Presenter mode at 1920×1080: ≥ 24 px text, the four columns across the width; each column's
    drawer holds its prompt by layer and its passages; a capped answer says so; "Next layer"
    reveals one column at a time and Reset clears them. On a phone the columns stack."""
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.locator("#presenter input").check()
    expect(page.locator("html")).to_have_class(re.compile("tutor-presenter"))
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-question textarea").fill("What are the five layers of AI model training?")
    page.locator("#compare-run").click()
    for way in range(4):
        expect(page.locator(f"#compare-{way} .layer-bar")).to_be_visible(timeout=2 * ANSWER_TIMEOUT_MS)
    alone = _shares(page, "#compare-0")
    assert alone["passages"] == 0 and alone["system prompt"] == 0 and alone["model's own knowledge"] == 100
    assert _shares(page, "#compare-3")["passages"] > 50

    # Readable from the back: every text in the columns at least 24 px; the columns fill the width.
    sizes = page.locator("#compare-row").evaluate(
        "(row) => [...row.querySelectorAll('p, li, small, span, summary, h3')]"
        ".filter((e) => e.innerText.trim()).map((e) => parseFloat(getComputedStyle(e).fontSize))"
    )
    assert sizes and min(sizes) >= 24, sorted(sizes)[:5]
    boxes = _column_boxes(page)
    assert sum(b["width"] for b in boxes) >= 0.85 * 1920 and min(b["width"] for b in boxes) >= 380, boxes
    assert len({round(b["y"]) for b in boxes}) == 1  # side by side
    _no_horizontal_overflow(page)
    _screenshot(page, "compare-projector-1920x1080")

    # Each answer ends at a sentence end or says it was cut at the cap.
    for way in range(4):
        column = page.locator(f"#compare-{way}")
        if column.locator(".cut").count() == 0:
            text = column.locator(".compare-answer").inner_text().strip()
            assert ends_a_sentence(text), text
        else:
            expect(column.locator(".cut")).to_contain_text("cut at 40 tokens")

    # The drawers: the prompt by layer, and the passages of the columns that had them.
    page.locator("#compare-3 details.drawer > summary").click()
    expect(page.locator("#compare-3 details.drawer .part-system")).to_be_visible()
    expect(page.locator("#compare-3 details.drawer .part-passages")).to_be_visible()
    expect(page.locator("#compare-3 details.drawer .passage").first).to_be_visible()
    page.locator("#compare-0 details.drawer > summary").click()
    expect(page.locator("#compare-0 details.drawer")).to_contain_text("No passages")

    # One layer at a time, then reset.
    for shown in range(1, 5):
        page.locator("#compare-next").click()
        for way in range(4):
            column = page.locator(f"#compare-{way}")
            if way < shown:
                expect(column).to_be_visible()
            else:
                expect(column).to_be_hidden()
    page.locator("#compare-reset").click()
    for way in range(4):
        expect(page.locator(f"#compare-{way}")).to_be_visible()
        expect(page.locator(f"#compare-{way}")).to_contain_text("waiting")
    page.locator("#compare-next").click()
    expect(page.locator("#compare-1")).to_be_hidden()
    page.locator("#compare-reset").click()

    # A phone: the columns stack, each the screen's width, nothing off-screen.
    page.locator("#presenter input").uncheck()
    page.set_viewport_size({"width": 390, "height": 844})
    boxes = _column_boxes(page)
    assert all(b["width"] >= 300 and b["x"] >= 0 and b["x"] + b["width"] <= 390 for b in boxes), boxes
    assert [b["y"] for b in boxes] == sorted(b["y"] for b in boxes) and boxes[1]["y"] > boxes[0]["y"] + 50
    _no_horizontal_overflow(page)
    _screenshot(page, "compare-phone-390x844")


def test_phone_layout_with_the_panel_as_a_drawer(page: Page) -> None:
    """390×844: the answer, the box and Ask on screen; a tap on [n] opens the panel over the page
    with its passage highlighted, and "Back to the answer" closes it."""
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(600)  # the panel slides off to the side
    _no_horizontal_overflow(page)
    panel = page.locator("#why-column")
    assert panel.bounding_box()["x"] >= 390  # type: ignore[index]  # off to the side until asked for
    box = page.locator("#question textarea")
    box.fill("What is RLHF?")
    page.locator("#ask").click()
    expect(page.locator('#why .why[data-turn="1"] .layer-bar')).to_be_attached(timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_timeout(300)
    assert _in_viewport(page, "#chat .message.bot", whole=False)
    for selector in ("#question textarea", "#ask"):
        assert _in_viewport(page, selector), selector
    ask = page.locator("#ask").bounding_box()
    assert ask is not None and ask["width"] >= 300  # under the box, full width
    _no_horizontal_overflow(page)
    _screenshot(page, "phone-answer-390x844")
    page.locator("#chat a[href^='#passage-1-']").first.click()
    expect(page.locator("#why .passage.flash")).to_have_count(1)
    page.wait_for_timeout(400)  # the drawer slides in
    drawer = panel.bounding_box()
    assert drawer is not None and drawer["x"] == 0 and drawer["width"] <= 390, drawer
    assert _in_viewport(page, "#why .why-back")
    _screenshot(page, "phone-drawer-390x844", full_page=False)
    page.locator("#why .why-back").click()
    page.wait_for_timeout(400)
    assert panel.bounding_box()["x"] >= 390  # type: ignore[index]
    assert _in_viewport(page, "#chat .message.bot", whole=False)
    page.locator(".why-open").click()  # the panel is also one tap away without a citation
    page.wait_for_timeout(400)
    assert panel.bounding_box()["x"] == 0  # type: ignore[index]


def _metric(url: str, name: str) -> float:
    text = httpx.get(url + "metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    return float(re.search(rf"^{name} (\S+)$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]


def test_login_form_then_the_embedded_chat(browser: Browser, guarded: tuple[str, Path]) -> None:
    """The sign-in form looks like the app; the embed at 400×600 stacks box and button, has no
    Gradio footer, folds its sources (each opens to its passage), takes likes; /logout signs out."""
    url = guarded[0]
    page = browser.new_page(viewport={"width": 400, "height": 600})
    page.goto(url + "embed/")
    expect(page.get_by_label("Access token")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("Tutor: how AI language models are trained")
    button = page.get_by_role("button", name="Sign in")
    assert button.evaluate("(b) => getComputedStyle(b).backgroundColor") == "rgb(249, 115, 22)"  # the Ask orange
    _screenshot(page, "sign-in-400x600")
    page.get_by_label("Access token").fill("a wrong token")
    button.click()
    expect(page.get_by_role("alert")).to_contain_text("not right")
    page.get_by_label("Access token").fill(TOKEN)
    page.get_by_label("Access token").press("Enter")
    box = page.locator("#question textarea")
    expect(box).to_be_visible(timeout=30_000)
    assert page.url.rstrip("/").endswith("/embed")
    expect(page.get_by_role("tab", name="Compare")).to_have_count(0)  # chat only
    expect(page.locator("#why")).to_have_count(0)
    # Stacked below 480 px: the box the frame's width, the button under it; no footer.
    field, ask = box.bounding_box(), page.locator("#ask").bounding_box()
    assert field is not None and ask is not None
    assert field["width"] >= 300 and ask["y"] >= field["y"] + field["height"] and ask["width"] >= 300, (field, ask)
    expect(page.locator("footer")).to_be_hidden()
    for text in ("Use via API", "Built with Gradio", "Settings"):
        expect(page.get_by_text(text)).to_have_count(0)
    _no_horizontal_overflow(page)
    box.fill("What is RLHF?")
    box.press("Enter")
    expect(page.locator("#chat")).to_contain_text("Shaped by:", timeout=ANSWER_TIMEOUT_MS)
    sources = page.locator("#chat .embed-sources").last
    expect(sources.locator("summary").first).to_contain_text(re.compile(r"(Sources|Related passages): \[1\]"))
    expect(sources.locator("details").first).to_be_hidden()  # folded
    sources.locator("summary").first.click()
    sources.locator("details summary").first.click()  # a source opens to its passage
    # The glossary's RLHF line, or the passage on the reinforcement learning stage it stands for.
    expect(sources.locator("details[open]").first).to_contain_text(re.compile(r"RLHF|reinforcement learning", re.I))
    assert field["y"] + field["height"] <= 600  # the box stays in the frame
    _no_horizontal_overflow(page)
    _screenshot(page, "embed-400x600", full_page=False)
    page.locator("#chat button[aria-label='Like']").last.click()
    expect(page.locator("#notice")).to_contain_text("rating is saved")
    records = [json.loads(line) for line in (guarded[1] / "data" / "feedback.jsonl").read_text().splitlines()]
    assert records[-1]["liked"] is True and records[-1]["question"] == "What is RLHF?"
    # Signing out forgets the cookie: the page asks for the token again.
    page.goto(url + "logout")
    expect(page.get_by_label("Access token")).to_be_visible()
    page.goto(url + "embed/")
    expect(page.get_by_label("Access token")).to_be_visible()
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


def test_questions_sent_during_an_answer_are_queued_and_the_conversation_comes_back(
    browser: Browser, guarded: tuple[str, Path]
) -> None:
    """Three quick sends: the second and third are shown as queued and Ask says so; all three are
    answered once, in order. A reload brings the signed-in user's conversation back, and an earlier
    question is one click from the box; once the chat is cleared, a reload leaves it empty."""
    url = guarded[0]
    context = browser.new_context(
        extra_http_headers={"X-Forwarded-User": "fay"}, viewport={"width": 1366, "height": 768}
    )
    page = context.new_page()
    page.goto(url)
    box = page.locator("#question textarea")
    expect(box).to_be_visible(timeout=30_000)
    questions = ["What is RLHF?", "What is pre-training?", "What is fine-tuning?"]
    box.fill(questions[0])
    box.press("Enter")
    expect(page.locator("#chat .message.bot").first).not_to_have_text("", timeout=ANSWER_TIMEOUT_MS)
    for question in questions[1:]:
        box.fill(question)
        box.press("Enter")
        expect(box).to_have_value("")
    expect(page.locator("#chat")).to_contain_text("Queued: answered after the current answer")
    _screenshot(page, "queued-questions")
    expect(page.locator('#why .why[data-turn="3"] .layer-bar')).to_be_visible(timeout=3 * ANSWER_TIMEOUT_MS)
    expect(page.locator("#ask")).to_have_text("Ask")
    expect(page.locator("#chat")).not_to_contain_text("Queued")
    asked = page.locator("#chat .message.user").all_inner_texts()
    assert [text.strip() for text in asked] == questions, asked
    assert page.locator("#chat .message.bot").count() == 3
    history = httpx.get(url + "api/history", headers={"X-Forwarded-User": "fay"}).json()["history"]
    assert [item["question"] for item in history] == questions

    page.reload()
    expect(page.locator("#chat .message.user")).to_have_count(3, timeout=30_000)
    expect(page.locator('#why .why[data-turn="3"]')).to_contain_text("What is fine-tuning?")
    expect(page.locator("#history")).to_contain_text("Your earlier questions")
    page.locator("#history").get_by_text("What is pre-training?").click()
    expect(box).to_have_value("What is pre-training?")

    page.locator("#chat").get_by_role("button", name="Clear").click()  # a new conversation
    expect(page.locator("#chat .message.user")).to_have_count(0)
    history_file = guarded[1] / "data" / "history" / user_file_name("fay")
    for _ in range(100):  # the server has recorded the clear: a reload at once can drop the event
        if '"cleared"' in history_file.read_text(encoding="utf-8"):
            break
        time.sleep(0.1)
    # Not recorded at all once: Clear reached a line other than the one the reload restored.
    assert '"cleared"' in history_file.read_text(encoding="utf-8"), "the server did not record the clear"
    page.reload()  # the cleared conversation does not come back; the earlier questions do
    expect(page.locator("#history")).to_contain_text("What is pre-training?", timeout=30_000)
    expect(page.locator("#chat .message.user")).to_have_count(0)
    history = httpx.get(url + "api/history", headers={"X-Forwarded-User": "fay"}).json()["history"]
    assert [item["question"] for item in history] == questions  # the answers stay in the history
    context.close()


def test_api_docs_work_offline_and_the_start_log_names_the_framing_rule(
    browser: Browser, server: tuple[str, Path]
) -> None:
    """Every request to a host other than this machine fails; /docs still shows the API."""
    url = server[0]
    page = browser.new_page()
    outside: list[str] = []

    def only_loopback(route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    page.goto(url + "docs")
    expect(page.get_by_role("heading", name="Tutor API")).to_be_visible()
    expect(page.locator("section#post\\/api\\/ask")).to_contain_text("question")
    expect(page.locator("section#post\\/api\\/ask")).to_contain_text("at most")
    expect(page.get_by_role("link", name="openapi.json")).to_be_visible()
    assert outside == [], outside
    _screenshot(page, "docs-offline")
    page.goto(url)  # the page itself needs nothing from outside either, and links its API to /docs
    expect(page.locator("#question textarea")).to_be_visible(timeout=30_000)
    assert page.locator("#header a", has_text="API").get_attribute("href") == "docs"
    page.close()
    log = (server[1].parent / "serve.log").read_text()
    assert '"frame_ancestors": "\'self\'"' in log, log[:500]
