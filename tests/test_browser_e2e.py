"""End to end in a real browser: Debian's headless Chromium driven by Playwright against a
live daphne server and qcluster worker on loopback (never a downloaded browser).

Sign in, upload a document, wait until it is ready, ask about it from the start page (Enter
sends), watch the answer stream in under the quoted evidence sentence with a citation, open
the cited passage with that sentence highlighted, reload and find the conversation in the
history. Along the way, what a screen reader gets: the streaming answer is busy and silent,
its end is announced once, the passage panel is a modal dialog that hands focus back, and
citation buttons are named after their sources.

A saved answer (made with the factories) shows a sentence the sources do not support flagged
as such, and links its passage to the document page with the sentence marked. On a phone-sized
screen the conversation page fits the width.

Every page runs under the site's strict Content-Security-Policy: no page visited (sign-in,
documents, chat with a streamed answer over the websocket, the passage dialog, API tokens, the
admin) may break a rule of it, and an inline script is shown to be blocked and reported.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from chat.models import Citation, Message
from tests.chat.factories import answers, make_cited_document, make_conversation, make_document, make_passage
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
# Logs each evidence quote as it is added to an answer, with whether the model had written
# anything yet: the quote must come first, straight after the search.
EVIDENCE_RECORDER = """
window.kbEvidence = [];
new MutationObserver((records) => {
  for (const record of records) {
    record.addedNodes.forEach((node) => {
      if (node.nodeType === 1 && node.matches("figure.evidence")) {
        const body = node.closest("article").querySelector(".msg-body");
        window.kbEvidence.push({text: node.textContent, answerStarted: body.textContent.trim() !== ""});
      }
    });
  }
}).observe(document, {subtree: true, childList: true});
"""
# Installed before any script of a page runs: reports every Content-Security-Policy violation
# to the console, where the test collects them across pages (Chromium also logs a "Refused to
# ..." line of its own, collected as well).
CSP_RECORDER = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.effectiveDirective} blocked ${event.blockedURI || "inline"} ` +
    `at ${event.sourceFile}:${event.lineNumber} on ${document.location.pathname}`);
});
"""


def watch_csp(page, violations: list[str]) -> None:
    """Collect the page's Content-Security-Policy violations into ``violations``."""
    page.add_init_script(CSP_RECORDER)
    page.on(
        "console",
        lambda message: (
            violations.append(message.text)
            if "CSP violation" in message.text or "Content Security Policy" in message.text
            else None
        ),
    )


ONE_ANNOUNCEMENT = re.compile(r"Answer complete\.( \d+ sentences? (was|were) not found in the sources\.)?")
# The saved answer with a flagged sentence, and the phone check's long words.
VAULT_TITLE = "Harbour_vault_night_shift_operating_procedures_revision_2026_final_approved.pdf"
VAULT_TEXT = "🔑 Keys stay in the office. The vault code is HARBOR999CB7. Change it every spring."
VAULT_SENTENCE = "The vault code is HARBOR999CB7."
LONG_WORD = "HARBOR999CB7" * 8
VAULT_ANSWER = f"The vault code is HARBOR999CB7 [1]. It was changed to 4401 last week. Reference: {LONG_WORD}."
VAULT_GROUNDING = [
    {"text": "The vault code is HARBOR999CB7 [1].", "supported": True, "sources": [1]},
    {"text": "It was changed to 4401 last week.", "supported": False, "sources": []},
    {"text": f"Reference: {LONG_WORD}.", "supported": True, "sources": [1]},
]
PHONE = {"width": 390, "height": 844}
NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"


def make_vault_conversation(user):
    """A saved answer citing a real chunk, with its evidence, highlight and grounding as the
    answering pipeline stores them (set through the ORM, so that the test does not depend on
    the model getting a fact wrong)."""
    document = make_document(user, VAULT_TITLE, [("Codes", VAULT_TEXT)])
    chunk = document.chunks.get()
    hit = SimpleNamespace(
        chunk_id=chunk.pk,
        document_id=document.public_id,
        ordinal=chunk.ordinal,
        title=document.title,
        location=chunk.location,
        page=None,
        text=chunk.text,
        score=0.9,
    )
    conversation = make_conversation(
        user, title="Vault code", exchanges=[("What is the vault code?", VAULT_ANSWER)], sources=[hit]
    )
    answer = answers(conversation)[0]
    Message.objects.filter(pk=answer.pk).update(
        evidence={"text": VAULT_SENTENCE, "source": 1}, grounding=VAULT_GROUNDING, finish_reason="stop"
    )
    # Offsets in code points, as Python counts them: the key emoji before the sentence is one.
    start = VAULT_TEXT.index(VAULT_SENTENCE)
    highlight = [{"text": VAULT_SENTENCE, "start": start, "end": start + len(VAULT_SENTENCE)}]
    Citation.objects.filter(message=answer).update(highlight=highlight)
    return conversation, document


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
    make_cited_document(dana, lamp)  # dana may read it, so its citation keeps its title
    cited = make_conversation(
        dana, exchanges=[("How does the lamp flash?", "Green, twice every ten seconds [1].")], sources=[lamp]
    )
    vault, vault_document = make_vault_conversation(dana)
    upload = tmp_path / "lighthouse.md"
    upload.write_text(DOCUMENT)
    User.objects.create_superuser("root", password=PASSWORD)
    csp_violations: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(120_000)
            page.add_init_script(A11Y_RECORDER)
            page.add_init_script(EVIDENCE_RECORDER)
            watch_csp(page, csp_violations)

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

            # Ask from the chat start page: Shift+Enter is a new line, Enter sends. The question
            # becomes the new conversation's first message and its answer streams in.
            page.goto(f"{live_site.url}/")
            box = page.locator("#start-question")
            box.fill("What colour")
            box.press("Shift+Enter")
            expect(box).to_have_value("What colour\n")
            expect(page).to_have_url(f"{live_site.url}/")
            question = "What colour does the Skerry Point lamp flash?"
            box.fill(question)
            box.press("Enter")
            expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
            expect(page.locator("article.msg").first).to_have_class(re.compile(r"\bmsg-user\b"))
            expect(page.locator("article.msg-user")).to_have_count(1)
            expect(page.locator("article.msg-user .msg-body")).to_have_text(question)
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
            said = page.evaluate("window.kbA11y.said")
            assert len(said) == 1 and ONE_ANNOUNCEMENT.fullmatch(said[0]), said
            expect(page.get_by_role("status").filter(has_text="Answer complete.")).to_have_attribute(
                "aria-live", "polite"
            )
            # Checked at the end (they need the server's `evidence` event and `highlight`s):
            # what the live answer quoted, and what its passage panel marked.
            live_evidence = page.evaluate("window.kbEvidence")
            live_quote = answer.locator("figure.evidence")
            live_quote_first = answer.evaluate("a => a.querySelector('figure.evidence + .msg-body') !== null")
            live_quote_texts = live_quote.locator(".evidence-text").all_inner_texts()

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
            live_marks = panel.locator("#passage-text mark").all_inner_texts()
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
            expect(saved.locator(".msg-body")).to_have_text(answer_text, use_inner_text=True)
            expect(page.locator("article.msg-user .msg-body")).to_have_text([question])
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

            # A saved answer: the evidence quote comes first, with its citation; the sentence
            # the sources do not support is flagged in words (for screen readers too), the
            # others are not.
            vault_url = live_site.url + reverse("chat:conversation", args=[vault.public_id])
            page.goto(vault_url)
            saved = page.locator("article.msg-assistant")
            quote = saved.locator("figure.evidence")
            expect(quote.locator("figcaption")).to_have_text("From your documents")
            expect(quote.locator(".evidence-text")).to_have_text(VAULT_SENTENCE)
            assert saved.evaluate("a => a.querySelector('figure.evidence + .msg-body') !== null")
            flagged = saved.locator(".msg-body .unsupported")
            expect(flagged).to_have_text(["It was changed to 4401 last week."])
            label = saved.locator(".msg-body .unsupported-label")
            expect(label).to_have_count(1)
            expect(label).to_be_visible()
            expect(label).to_have_text("(not found in the sources)", use_inner_text=False)
            expect(saved.locator(".msg-body")).to_contain_text(
                "It was changed to 4401 last week. (not found in the sources)", use_inner_text=False
            )
            expect(saved.locator(".msg-body")).to_contain_text("The vault code is HARBOR999CB7")

            # Its [1] opens the passage with the evidence sentence marked (offsets in code
            # points: an emoji precedes it), and a link to the passage on the document page.
            quote.get_by_role("button", name=re.compile(r"^Source 1: Harbour_vault")).click()
            expect(page.get_by_role("dialog", name=VAULT_TITLE)).to_be_visible()
            expect(panel.locator("#passage-text mark")).to_have_text([VAULT_SENTENCE])
            expect(panel.locator("#passage-text")).to_have_text(VAULT_TEXT)
            page.screenshot(path=str(tmp_path / "vault-passage.png"))
            panel.get_by_role("link", name="Open in the document").click()
            expect(page).to_have_url(
                re.compile(rf"/documents/{vault_document.public_id}/\?chunk=0&hl=\d+-\d+#chunk-0$")
            )
            cited_chunk = page.locator("#chunk-0")
            expect(cited_chunk).to_have_class(re.compile(r"\btarget\b"))
            expect(cited_chunk.locator("mark")).to_have_text([VAULT_SENTENCE])
            page.screenshot(path=str(tmp_path / "document-marked.png"), full_page=True)

            # "Ask about this document" starts a conversation limited to it: the header says
            # so, and the answer's sources all come from this document (Dana can read the
            # lighthouse document too).
            page.get_by_role("button", name="Ask about this document").click()
            expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
            expect(page.locator("#scope-select option:checked")).to_have_text(f"Document: {VAULT_TITLE}")
            composer = page.locator("#question")
            composer.fill("What is the vault code, and how does the lamp flash?")
            composer.press("Enter")
            scoped = page.locator("article.msg-assistant").last
            expect(scoped.locator(".sources .source-link").first).to_be_visible(timeout=180_000)
            expect(scoped).not_to_have_class(re.compile(r"\bstreaming\b"), timeout=180_000)
            scoped_sources = scoped.locator(".sources li").evaluate_all("items => items.map(i => i.dataset.document)")
            assert scoped_sources and set(scoped_sources) == {str(vault_document.public_id)}, scoped_sources

            # On a phone the conversation fits the screen: a long source title and a long
            # unbroken word wrap instead of pushing the page sideways; the conversation list
            # folds away behind a button.
            phone = browser.new_page(viewport=PHONE, storage_state=page.context.storage_state())
            phone.set_default_timeout(60_000)
            watch_csp(phone, csp_violations)
            phone.goto(vault_url)
            expect(phone.locator("article.msg-assistant .unsupported-label")).to_be_visible()
            assert phone.evaluate(NO_SIDEWAYS_SCROLL), phone.evaluate("document.documentElement.scrollWidth")
            expect(phone.locator(".conversation-list")).to_be_hidden()
            toggle = phone.get_by_role("button", name="Conversations")
            expect(toggle).to_have_attribute("aria-expanded", "false")
            toggle.click()
            expect(toggle).to_have_attribute("aria-expanded", "true")
            expect(phone.locator(".conversation-list")).to_be_visible()
            assert phone.evaluate(NO_SIDEWAYS_SCROLL)
            phone.screenshot(path=str(tmp_path / "phone-chat.png"), full_page=True)
            phone.locator("article.msg-assistant .source-link").first.click()
            expect(phone.locator("#passage-text mark")).to_have_text([VAULT_SENTENCE])
            phone.screenshot(path=str(tmp_path / "phone-passage.png"))
            phone.keyboard.press("Escape")
            phone.goto(conversation_url)
            expect(phone.locator("article.msg-assistant .msg-body")).to_have_text(answer_text, use_inner_text=True)
            assert phone.evaluate(NO_SIDEWAYS_SCROLL), phone.evaluate("document.documentElement.scrollWidth")
            phone.goto(f"{live_site.url}/")
            assert phone.evaluate(NO_SIDEWAYS_SCROLL)
            phone.screenshot(path=str(tmp_path / "phone-start.png"), full_page=True)

            # The live answer quoted the best source sentence at once, above the model's answer,
            # and its passage panel marked the evidence sentences (needs the server's
            # `evidence` event and `highlight`s, docs/websocket-protocol.md).
            assert len(live_evidence) == 1, live_evidence
            assert not live_evidence[0]["answerStarted"], "the quote came after the model had started writing"
            assert live_quote_first, "the quote is not above the answer"
            assert len(live_quote_texts) == 1 and "green" in live_quote_texts[0].lower(), live_quote_texts
            assert live_marks and any("green" in mark.lower() for mark in live_marks), live_marks

            # API tokens: revoking asks first (site.js; no inline handler under the policy).
            page.goto(live_site.url + reverse("accounts:tokens"))
            page.fill("input[name=name]", "e2e script")
            page.click("form button[type=submit].primary")
            expect(page.locator("#new-token")).to_be_visible()
            revoke = page.get_by_role("button", name="Revoke")
            page.once("dialog", lambda dialog: dialog.dismiss())
            revoke.click()
            expect(revoke).to_be_visible()
            page.once("dialog", lambda dialog: dialog.accept())
            revoke.click()
            expect(page.get_by_text("You have no API tokens.")).to_be_visible()

            # The admin works under the same policy: sign in, the index, a list, an add form.
            admin = browser.new_page()
            admin.set_default_timeout(60_000)
            watch_csp(admin, csp_violations)
            admin.goto(live_site.url + reverse("admin:login"))
            admin.fill("input[name=username]", "root")
            admin.fill("input[name=password]", PASSWORD)
            admin.click("input[type=submit]")
            expect(admin.locator("#site-name")).to_be_visible()
            expect(admin).to_have_url(live_site.url + reverse("admin:index"))
            admin.goto(live_site.url + reverse("admin:chat_conversation_changelist"))
            expect(admin.locator("#changelist")).to_be_visible()
            admin.goto(live_site.url + reverse("admin:documents_document_add"))
            expect(admin.locator("input[type=file]")).to_be_visible()

            # No page broke a rule of the policy; and the recorder does hear one that does.
            assert csp_violations == [], csp_violations
            page.evaluate(
                "() => { const s = document.createElement('script');"
                " s.textContent = 'window.kbInlineRan = true'; document.head.appendChild(s); }"
            )
            assert page.evaluate("window.kbInlineRan === undefined"), "an inline script ran"
            for _ in range(100):  # console messages arrive asynchronously
                if csp_violations:
                    break
                page.wait_for_timeout(100)
            assert any("script-src" in line for line in csp_violations), csp_violations
        finally:
            browser.close()
