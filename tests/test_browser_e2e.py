"""End to end in a real browser: Debian's headless Chromium driven by Playwright against a
live daphne server and qcluster worker on loopback (never a downloaded browser).

Sign in, upload a document, wait until it is ready, ask about it, watch the answer stream in
with a citation, open the cited passage, reload and find the conversation in the history.
Along the way, what a screen reader gets: the streaming answer is busy and silent, its end is
announced once, the passage panel is a modal dialog that hands focus back, and citation
buttons are named after their sources.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from tests.chat.factories import make_conversation, make_passage
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
# Installed before any script of a page runs: logs every change of an answer's aria-busy and
# every text put in the #answer-status live region, so the test sees each step however fast
# the answer streams.
A11Y_RECORDER = """
window.kbA11y = {busy: [], said: []};
new MutationObserver((records) => {
  for (const record of records) {
    const target = record.target;
    if (record.type === "attributes" && target.matches("article.msg-assistant")) {
      window.kbA11y.busy.push(target.getAttribute("aria-busy"));
    } else if (record.type === "childList" && target.id === "answer-status") {
      record.addedNodes.forEach((node) => {
        if (node.textContent.trim()) window.kbA11y.said.push(node.textContent);
      });
    }
  }
}).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ["aria-busy"]});
"""
# True when a node, or one of its ancestors, is a region whose changes screen readers read out.
IN_LIVE_REGION = (
    "node => node.closest('[aria-live]:not([aria-live=off]), [role=status], [role=log], [role=alert]') !== null"
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

    dana = User.objects.create_user("dana", password=PASSWORD)
    # A saved answer citing [1], for the citation marker's name (made here: the ORM refuses to
    # run inside Playwright's event loop). The conversation asked below is newer, so it stays
    # first in the history list.
    lamp = make_passage("Lighthouse keeping", "The lamp", "It flashes green twice every ten seconds.", 0.8)
    cited = make_conversation(
        dana, exchanges=[("How does the lamp flash?", "Green, twice every ten seconds [1].")], sources=[lamp]
    )
    upload = tmp_path / "lighthouse.md"
    upload.write_text(DOCUMENT)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(120_000)
            page.add_init_script(A11Y_RECORDER)

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

            # Screen readers: the answer was busy while it streamed and sits in no live region,
            # so no token was read out; its end was announced once, politely.
            expect(answer).to_have_attribute("aria-busy", "false")
            assert page.evaluate("window.kbA11y.busy") == ["true", "false"]
            assert not answer.evaluate(IN_LIVE_REGION), "the streaming answer is inside a live region"
            assert page.evaluate("window.kbA11y.said") == ["Answer complete."]
            expect(page.get_by_role("status").filter(has_text="Answer complete.")).to_have_attribute(
                "aria-live", "polite"
            )

            # A source is named after its passage, not "[1]".
            location = answer.locator('.sources li[data-n="1"]').get_attribute("data-location")
            source_name = "Source 1: Lighthouse keeping" + (f", {location}" if location else "")
            expect(source).to_have_accessible_name(source_name)

            # The citation opens its passage in a modal dialog that takes the focus; Escape
            # closes it and puts the focus back on the citation.
            source.click()
            panel = page.locator("#passage-panel")
            dialog = page.get_by_role("dialog", name="Lighthouse keeping")
            expect(dialog).to_be_visible()
            expect(dialog).to_have_attribute("aria-modal", "true")
            expect(panel.locator("#passage-title")).to_have_text("Lighthouse keeping")
            expect(panel.locator("#passage-text")).to_contain_text("flashes green")
            expect(dialog.get_by_role("button", name="Close passage")).to_be_focused()
            page.screenshot(path=str(tmp_path / "passage.png"))
            page.keyboard.press("Escape")
            expect(dialog).to_be_hidden()
            expect(source).to_be_focused()
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
            expect(saved.locator(".sources .source-link").first).to_have_accessible_name(source_name)
            page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)

            # A saved answer's [1] marker is a button named after its source; the dialog it
            # opens closes with its button and gives the focus back to the marker.
            page.goto(live_site.url + reverse("chat:conversation", args=[cited.public_id]))
            marker = page.locator("article.msg-assistant .msg-body button.cite")
            expect(marker).to_have_text("1")
            expect(marker).to_have_accessible_name("Source 1: Lighthouse keeping, The lamp")
            marker.click()
            expect(dialog).to_be_visible()
            expect(panel.locator("#passage-text")).to_have_text("It flashes green twice every ten seconds.")
            dialog.get_by_role("button", name="Close passage").click()
            expect(dialog).to_be_hidden()
            expect(marker).to_be_focused()
        finally:
            browser.close()
