"""`tutor serve --root-path /tutor` behind a real nginx (Debian's) at the sub-path /tutor/."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from .conftest import free_port, start_tutor, wait_for_http
from .test_browser import CHROMIUM_FLAGS

NGINX_CONF = """
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {folder}/body; proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fastcgi; uwsgi_temp_path {folder}/uwsgi; scgi_temp_path {folder}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location /tutor/ {{
      proxy_pass http://127.0.0.1:{upstream}/;
      proxy_http_version 1.1;
      proxy_set_header Host $host:$server_port;
      proxy_set_header X-Forwarded-User $remote_user;
      proxy_buffering off;
      proxy_read_timeout 300s;
    }}
  }}
}}
"""


@pytest.fixture(scope="module")
def proxied(corpus_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx on a free port forwarding /tutor/ to a tutor served with --root-path /tutor."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "Debian's nginx is needed: apt-get install nginx (make test does)"
    folder = tmp_path_factory.mktemp("proxied")
    upstream, port = free_port(), free_port()
    tutor = start_tutor(folder, corpus_index, upstream, "--root-path", "/tutor")
    (folder / "nginx.conf").write_text(NGINX_CONF.format(folder=folder, port=port, upstream=upstream))
    proxy = subprocess.Popen([nginx, "-c", str(folder / "nginx.conf"), "-p", str(folder)],
                             stdout=(folder / "nginx.log").open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}/tutor/"
    try:
        wait_for_http(f"http://127.0.0.1:{upstream}/healthz", tutor, folder / "serve.log", 180)
        wait_for_http(url + "healthz", proxy, folder / "nginx.log", 30)
        yield url
    finally:
        proxy.terminate()
        tutor.terminate()
        proxy.wait(timeout=30)
        tutor.wait(timeout=30)


def test_api_and_health_at_the_sub_path(proxied: str) -> None:
    assert httpx.get(proxied + "healthz").json() == {"status": "ok"}
    assert httpx.get(proxied + "readyz").json()["status"] == "ready"
    answer = httpx.post(proxied + "api/ask", json={"question": "What is RLHF?"}, timeout=120).json()
    assert answer["in_scope"] is True and answer["attribution"]["retrieval"] > 0


def test_the_page_works_through_the_proxy(proxied: str) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(proxied)
        box = page.locator("#question textarea")
        box.fill("What is RLHF?")
        box.press("Enter")
        expect(page.locator('#why .why[data-turn="1"] .layer-bar')).to_be_visible(timeout=120_000)
        expect(page.locator("#chat")).to_contain_text("RLHF")
        browser.close()
