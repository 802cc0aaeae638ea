"""The README's three screenshots, taken from a running `tutor serve` in Debian's Chromium.

    .venv/bin/tutor serve &                     # the default model, the shipped index
    .venv/bin/python docs/screenshots.py [URL]  # default http://127.0.0.1:7860/

Writes docs/chat.png (the chat and its panel at 1366×768), docs/compare-projector.png (compare
mode in presenter mode at 1920×1080) and docs/embed.png (the embed at 400×600), each reduced to
256 colours so that it stays small (under 300 KB).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

DOCS = Path(__file__).resolve().parent
ANSWER_MS = 240_000
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def save(page: Page, name: str) -> Path:
    """A screenshot of the viewport as a 256-colour PNG."""
    path = DOCS / name
    page.screenshot(path=str(path))
    with Image.open(path) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path} {path.stat().st_size // 1024} KB")
    return path


def ready(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#question textarea")).to_be_visible(timeout=60_000)
    page.wait_for_timeout(1000)


def chat(page: Page, url: str) -> None:
    page.set_viewport_size({"width": 1366, "height": 768})
    ready(page, url)
    page.locator("#question textarea").fill("What are the five layers of AI model training?")
    page.locator("#question textarea").press("Enter")
    expect(page.locator('#why .why[data-turn="1"] .layer-bar')).to_be_visible(timeout=ANSWER_MS)
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(500)
    save(page, "chat.png")


def compare(page: Page, url: str) -> None:
    page.set_viewport_size({"width": 1920, "height": 1080})
    ready(page, url)
    page.locator("#presenter input").check()
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-run").click()
    for way in range(4):
        expect(page.locator(f"#compare-{way} .layer-bar")).to_be_visible(timeout=2 * ANSWER_MS)
    page.locator("#compare-row").scroll_into_view_if_needed()
    page.evaluate("document.getElementById('compare-ask-row').scrollIntoView({block: 'start'})")
    page.wait_for_timeout(500)
    save(page, "compare-projector.png")


def embed(page: Page, url: str) -> None:
    page.set_viewport_size({"width": 400, "height": 600})
    ready(page, url + "embed/")
    page.locator("#question textarea").fill("What is RLHF?")
    page.locator("#question textarea").press("Enter")
    expect(page.locator("#chat")).to_contain_text("Shaped by:", timeout=ANSWER_MS)
    page.locator("#chat .embed-sources > summary").last.click()
    page.wait_for_timeout(500)
    save(page, "embed.png")


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:7860/"
    url = url if url.endswith("/") else url + "/"
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS)
        for take in (chat, compare, embed):
            page = browser.new_page()
            take(page, url)
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
