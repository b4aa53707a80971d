"""Chunks fit the embedding model whole, follow the text's structure, overlap, and lose nothing.

Token counts come from the real MiniLM tokenizer: the promise is about that model.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from documents import embeddings
from documents.chunking import split_sections
from documents.embedding_backends.base import tokens_add_up
from documents.extraction import Section

ROOT = Path(__file__).resolve().parents[2]
MAX = 256
SOURCE_TEXT = (
    "the knowledge base splits documents into passages that the embedding model reads whole "
    "while postgres keeps vectors beside the text so that search finds answers quickly"
)
WORDS = SOURCE_TEXT.split(" ")


def sentence(rng: random.Random, words: int | None = None) -> str:
    count = words or rng.randint(6, 24)
    return " ".join(rng.choice(WORDS) for _ in range(count)).capitalize() + "."


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def split(sections, *, max_tokens=MAX, overlap=32, added_up=True):
    """As ingestion splits (``added_up``: counts added up where the tokenizer allows), or by
    counting every chunk again."""
    return split_sections(
        sections,
        count_tokens=embeddings.count_tokens,
        max_tokens=max_tokens,
        overlap_tokens=overlap,
        count_many=embeddings.count_tokens_many if added_up else None,
        tokens_add_up=added_up and embeddings.tokens_add_up(),
    )


def assert_fits(drafts, max_tokens=MAX):
    assert drafts
    for draft in drafts:
        assert draft.token_count == embeddings.count_tokens(draft.text)
        assert draft.token_count <= max_tokens
        assert draft.text == draft.text.strip() and draft.text


def words_of(drafts) -> list[str]:
    return [word for draft in drafts for word in draft.text.split()]


def test_a_short_section_is_one_chunk_with_its_text_unchanged():
    text = "Install\n\nRun make run, then open the site."
    drafts = split([Section(text=text, headings=("Guide", "Install"))])
    assert len(drafts) == 1
    assert drafts[0].text == text
    assert drafts[0].location == "Guide › Install"
    assert drafts[0].page is None
    assert_fits(drafts)


def test_every_chunk_fits_the_model_including_special_tokens():
    rng = random.Random(1)
    text = "\n\n".join(paragraph(rng, rng.randint(1, 12)) for _ in range(40))
    drafts = split([Section(text=text)])
    assert len(drafts) > 5
    assert_fits(drafts)
    # Chunks are filled, not cut needlessly small.
    assert sum(d.token_count for d in drafts) / len(drafts) > MAX * 0.6


def test_chunks_never_span_two_pages_or_two_heading_sections():
    rng = random.Random(2)
    sections = [
        Section(text=paragraph(rng, 3), page=1),
        Section(text=paragraph(rng, 3), page=2),
        Section(text=paragraph(rng, 3), headings=("Install", "Linux")),
    ]
    drafts = split(sections)
    assert [(d.location, d.page) for d in drafts] == [("page 1", 1), ("page 2", 2), ("Install › Linux", None)]
    assert [d.text for d in drafts] == [s.text for s in sections]


def test_chunks_break_between_paragraphs_when_paragraphs_are_small():
    rng = random.Random(3)
    paragraphs = [paragraph(rng, rng.randint(1, 3)) for _ in range(30)]
    drafts = split([Section(text="\n\n".join(paragraphs))], overlap=0)
    assert len(drafts) > 2
    for draft in drafts:
        assert all(part in paragraphs for part in draft.text.split("\n\n"))
    assert "\n\n".join(d.text for d in drafts) == "\n\n".join(paragraphs)


def test_a_paragraph_too_long_for_one_chunk_breaks_between_sentences():
    rng = random.Random(4)
    sentences = [sentence(rng) for _ in range(60)]
    drafts = split([Section(text=" ".join(sentences))], overlap=0)
    assert len(drafts) > 2
    assert_fits(drafts)
    for draft in drafts:
        assert draft.text.endswith(".")
    assert " ".join(d.text for d in drafts) == " ".join(sentences)


def test_consecutive_chunks_of_a_section_overlap_by_about_the_setting():
    rng = random.Random(5)
    text = " ".join(sentence(rng, 8) for _ in range(80))
    drafts = split([Section(text=text)], overlap=32)
    assert_fits(drafts)
    for before, after in zip(drafts, drafts[1:], strict=False):
        shared = _shared_prefix_suffix(before.text, after.text)
        assert shared, "the next chunk starts with the end of the previous one"
        assert 5 <= embeddings.count_tokens(shared) - 2 <= 32


def test_no_overlap_crosses_a_section_boundary():
    rng = random.Random(6)
    drafts = split([Section(text=paragraph(rng, 30), page=1), Section(text="Second page.", page=2)])
    assert drafts[-1].text == "Second page."


def _shared_prefix_suffix(before: str, after: str) -> str:
    """The longest start of ``after`` that is also the end of ``before``."""
    for size in range(min(len(before), len(after)), 0, -1):
        if before.endswith(after[:size]):
            return after[:size]
    return ""


def test_a_very_long_line_without_punctuation_is_cut_between_words_and_loses_nothing():
    rng = random.Random(7)
    words = [rng.choice(WORDS) for _ in range(5000)]
    drafts = split([Section(text=" ".join(words))], overlap=0)
    assert len(drafts) > 10
    assert_fits(drafts)
    assert words_of(drafts) == words


def test_a_single_enormous_word_is_cut_and_loses_nothing():
    word = "".join(random.Random(8).choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(20000))
    drafts = split([Section(text=word)], overlap=0)
    assert len(drafts) > 1
    assert_fits(drafts)
    assert "".join(d.text for d in drafts) == word


def test_a_word_the_tokenizer_reads_as_one_unknown_token_is_still_cut():
    # 100,000 "x"s are a single [UNK] token for BERT: it would fit, but a chunk that size is absurd.
    drafts = split([Section(text="x" * 100_000)], overlap=0)
    assert len(drafts) > 10
    assert_fits(drafts)
    assert sum(len(d.text) for d in drafts) == 100_000


def test_a_smaller_chunk_size_setting_is_respected():
    rng = random.Random(9)
    drafts = split([Section(text=paragraph(rng, 20))], max_tokens=64, overlap=8)
    assert len(drafts) > 3
    assert_fits(drafts, max_tokens=64)


def test_the_overlap_never_exceeds_half_a_chunk():
    rng = random.Random(10)
    drafts = split([Section(text=paragraph(rng, 20))], max_tokens=64, overlap=500)
    assert_fits(drafts, max_tokens=64)
    assert len(drafts) < 40  # an overlap as big as the chunk would make the splitter crawl


def test_mixed_scripts_and_symbols_fit():
    text = " ".join(["日本語のテキストです。", "Ελληνικά κείμενα.", "emoji 🎉🎉🎉", "maths ∑∫√"] * 200)
    drafts = split([Section(text=text)])
    assert_fits(drafts)


def test_a_max_tokens_without_room_for_text_is_refused():
    with pytest.raises(ValueError, match="no room"):
        split([Section(text="hello")], max_tokens=2)


def test_five_thousand_abstracts_each_fit_and_keep_their_heading():
    # The speed of splitting a corpus is measured by `make bench PART=ingestion`, not here.
    rng = random.Random(11)
    sections = [Section(text=paragraph(rng, rng.randint(4, 12)), headings=(f"Abstract {i}",)) for i in range(5000)]
    drafts = split(sections)
    assert len(drafts) >= 5000
    assert_fits(drafts)
    assert {draft.location for draft in drafts} == {f"Abstract {i}" for i in range(5000)}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a" + " " * 100_000 + "b", ["a", "b"]),
        ("Done." + " " * 100_000 + "Next one.", ["Done.", "Next", "one."]),
        ("x" + " \t" * 50_000 + "\ny", ["x", "y"]),
        ("Quoted.”" + "\u00a0" * 50_000 + "End", ["Quoted.”", "End"]),
    ],
    ids=["spaces", "after-a-sentence", "spaces-and-tabs-then-a-line-break", "no-break-spaces"],
)
def test_long_runs_of_white_space_split_correctly(text, words):
    drafts = split([Section(text=text)])
    assert_fits(drafts)
    assert words_of(drafts) == words


# Two million spaces between two words: sentence splitting that searched for a line break from
# every position of the run took time quadratic in it (an hour here); linear takes under a
# second. A subprocess, so that a regression fails this test instead of hanging the run.
_SPACES_BETWEEN_WORDS = r"""
from documents.chunking import split_sections
from documents.embedding_backends.base import tokens_add_up
from documents.extraction import Section
drafts = split_sections(
    [Section(text="alpha" + " " * 2_000_000 + "omega.")],
    count_tokens=lambda text: len(text.split()) + 2,
    max_tokens=256,
    overlap_tokens=32,
)
print(" ".join(draft.text for draft in drafts))
"""


def test_sentence_splitting_is_linear_in_a_run_of_spaces():
    try:
        result = subprocess.run(
            [sys.executable, "-c", _SPACES_BETWEEN_WORDS], cwd=ROOT, capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        pytest.fail("splitting two words apart by 2 MB of spaces ran for more than 20 s: a pattern backtracks")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["alpha", "omega."]


# Texts whose counts could go wrong if added up: scripts the normaliser pads or folds, control
# characters it drops, literal special tokens, cut words, line breaks and quotes at sentence ends.
_AWKWARD = [
    "\n\n".join(
        " ".join(["日本語のテキストです。", "Ελληνικά κείμενα.", "Café naïve RÉSUMÉ.", "emoji 🎉🎉 maths ∑∫√"] * 30)
        for _ in range(3)
    ),
    "A [CLS] literal [SEP] and [MASK] token. " * 120,
    "Control\x0bcharacters\x0c and\x1c separators\x1f here. Zero\u200bwidth. " * 80,
    "“Quoted,” she said. (Bracketed.) Done!\tTabbed? Yes… e.g. Dr. Smith paid $3.50 at 10:30.\n" * 60,
    "line one\nline two\r\nline three\n   indented line\n\n\nnew paragraph " * 90,
    "short. " + "x" * 3000 + " tail words after a long word. " + "y" * 700,
    " ".join(f"https://example.org/a/very/long/path?query=string&n={n}" for n in range(400)),
]


@pytest.mark.parametrize("text", _AWKWARD, ids=["scripts", "special", "control", "punctuation", "lines", "cut", "urls"])
def test_adding_counts_up_chunks_exactly_as_counting_every_chunk(text):
    assert embeddings.tokens_add_up()  # the bundled MiniLM's WordPiece tokenizer
    rng = random.Random(12)
    sections = [Section(text=text), Section(text="\n\n".join(paragraph(rng, rng.randint(1, 14)) for _ in range(20)))]
    for max_tokens, overlap in ((MAX, 32), (40, 10)):
        added_up = split(sections, max_tokens=max_tokens, overlap=overlap)
        assert added_up == split(sections, max_tokens=max_tokens, overlap=overlap, added_up=False)
        assert_fits(added_up, max_tokens=max_tokens)


def test_added_up_counts_read_each_sentence_once_and_never_count_a_chunk_again():
    single: list[str] = []
    many: list[list[str]] = []

    def count_one(text):
        single.append(text)
        return embeddings.count_tokens(text)

    def count_many(texts):
        many.append(list(texts))
        return embeddings.count_tokens_many(texts)

    rng = random.Random(13)
    text = "\n\n".join(paragraph(rng, rng.randint(2, 14)) for _ in range(30))
    drafts = split_sections(
        [Section(text=text)],
        count_tokens=count_one,
        max_tokens=MAX,
        overlap_tokens=32,
        count_many=count_many,
        tokens_add_up=True,
    )
    assert len(drafts) > 5
    assert_fits(drafts)
    sentences = [sentence for part in text.split("\n\n") for sentence in _sentence_texts(part)]
    assert len(many) == 1 and sorted(many[0]) == sorted(sentences)
    # Counted one by one: the special tokens, once, and the trailing words of a sentence too long
    # to start the next chunk whole (its overlap); never a chunk, a paragraph or a sentence.
    assert single[0] == ""
    assert all(any(sentence.endswith(tail) and sentence != tail for sentence in sentences) for tail in single[1:])
    assert len(single) <= len(drafts)


def _sentence_texts(paragraph_text: str) -> list[str]:
    from documents.chunking import _sentences

    return [sentence for sentence, _ in _sentences(paragraph_text)]


def test_only_a_bert_style_tokenizer_is_trusted_to_add_up():
    bert = json.loads(embeddings.model_path().joinpath("tokenizer.json").read_text(encoding="utf-8"))
    assert tokens_add_up(bert)
    byte_level = {**bert, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False}}
    sentencepiece = {**bert, "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}}
    spaced_token = {**bert, "added_tokens": [*bert["added_tokens"], {"content": "new line", "special": False}]}
    for tokenizer in (byte_level, sentencepiece, spaced_token, {**bert, "model": {"type": "BPE"}}):
        assert not tokens_add_up(tokenizer)
