"""End to end in a real browser: Debian's headless Chromium driven by Playwright against a
live daphne server and qcluster worker on loopback (never a downloaded browser).

Sign in, upload a document, wait until it is ready, ask about it, watch the answer stream in
with a citation, open the cited passage, reload and find the conversation in the history.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from django.contrib.auth.models import User

from tests.live import ROOT, WebServer, Worker, child_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "e2e-password-not-secret"
DOCUMENT = (
    "# Lighthouse keeping\n\n"
    "## The lamp\n\n"
    "The lighthouse lamp on Skerry Point is lit every evening at sunset by the keeper, "
    "and it flashes green twice every ten seconds.\n\n"
    "## Supplies\n\n"
    "Paraffin for the lamp is delivered by boat on the first Monday of each month.\n"
)


@pytest.fixture
def live_site(tmp_path):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (run `make browser`)")
    static_root = tmp_path / "static"
    env = child_env(LLM_MAX_TOKENS="64", LLM_CONTEXT="2048", STATIC_ROOT=str(static_root))
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    processes = []
    try:
        processes.append(WebServer(env, tmp_path))
        processes.append(Worker(env, tmp_path))
        yield processes[0]
    finally:
        for process in processes:
            process.stop()
        shutil.rmtree(static_root, ignore_errors=True)


def test_a_user_uploads_a_document_and_gets_a_streamed_cited_answer(live_site, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    User.objects.create_user("dana", password=PASSWORD)
    upload = tmp_path / "lighthouse.md"
    upload.write_text(DOCUMENT)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(120_000)

            # Sign in.
            page.goto(f"{live_site.url}/")
            expect(page).to_have_url(re.compile(r"/accounts/login/"))
            page.fill("input[name=username]", "dana")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page.locator(".username")).to_have_text("dana")

            # Upload, then watch the document become ready (the page polls its status).
            page.goto(f"{live_site.url}/documents/upload/")
            page.set_input_files("input[type=file]", str(upload))
            page.fill("input[name=title]", "Lighthouse keeping")
            page.click("form button[type=submit].primary")
            expect(page.get_by_role("heading", name="Lighthouse keeping")).to_be_visible()
            expect(page.locator(".status.ready").first).to_be_visible(timeout=180_000)
            expect(page.get_by_text("Lighthouse keeping › The lamp").first).to_be_visible()

            # Ask from the chat start page; the answer streams into the conversation.
            page.goto(f"{live_site.url}/")
            page.fill(".chat-welcome textarea[name=question]", "What colour does the Skerry Point lamp flash?")
            page.click(".chat-welcome button[type=submit]")
            expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
            answer = page.locator("article.msg-assistant").last
            expect(answer).to_have_class(re.compile(r"\bstreaming\b"))
            expect(answer).not_to_have_class(re.compile(r"\bstreaming\b"), timeout=180_000)
            body = answer.locator(".msg-body")
            assert body.inner_text().strip(), "the answer is empty"
            source = answer.locator(".sources .source-link").first
            expect(source).to_contain_text("Lighthouse keeping")

            # The citation opens its passage.
            source.click()
            panel = page.locator("#passage-panel")
            expect(panel).to_be_visible()
            expect(panel.locator("#passage-title")).to_have_text("Lighthouse keeping")
            expect(panel.locator("#passage-text")).to_contain_text("flashes green")
            conversation_url = page.url
            answer_text = body.inner_text().strip()

            # After a reload the conversation is in the history with its answer.
            page.goto(f"{live_site.url}/")
            history = page.locator(".conversation-list li a")
            expect(history.first).to_be_visible()
            history.first.click()
            expect(page).to_have_url(conversation_url)
            saved = page.locator("article.msg-assistant").last
            expect(saved.locator(".msg-body")).to_have_text(answer_text)
            expect(page.locator("article.msg-user").last).to_contain_text("Skerry Point")
            page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
        finally:
            browser.close()
