"""Sentence splitting with offsets, and the facts a grounding check looks for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chat import sentences

ROOT = Path(__file__).resolve().parents[2]


def texts(text: str) -> list[str]:
    spans = sentences.split(text)
    assert all(text[s.start : s.end] == s.text for s in spans)
    return [s.text for s in spans]


def test_sentences_end_at_final_punctuation_followed_by_space():
    assert texts("Backups run nightly. They are kept for thirty days! Are they encrypted? Yes.") == [
        "Backups run nightly.",
        "They are kept for thirty days!",
        "Are they encrypted?",
        "Yes.",
    ]


def test_abbreviations_initials_and_decimals_do_not_end_a_sentence():
    assert texts("Ask Dr. Smith, e.g. by mail. J. R. Brandt paid 3.5 kg at approx. 9 p.m. today. Done.") == [
        "Ask Dr. Smith, e.g. by mail.",
        "J. R. Brandt paid 3.5 kg at approx. 9 p.m. today.",
        "Done.",
    ]


def test_closing_quotes_and_brackets_stay_with_their_sentence():
    assert texts('He said "stop." Then he left (quietly.) The end') == [
        'He said "stop."',
        "Then he left (quietly.)",
        "The end",
    ]


def test_list_items_and_headings_are_sentences_but_wrapped_lines_are_not():
    text = (
        "Annual leave\n"
        "Employees get 25 days of leave per year, and unused days\n"
        "expire on 31 March of the next year.\n"
        "1. Book the train ticket.\n"
        "2. Ask the team lead\n"
        "- keep the receipt"
    )
    assert texts(text) == [
        "Annual leave",
        "Employees get 25 days of leave per year, and unused days\nexpire on 31 March of the next year.",
        "1. Book the train ticket.",
        "2. Ask the team lead",
        "- keep the receipt",
    ]


def test_a_short_line_ending_a_longer_line_is_not_a_heading():
    text = "It holds fuel cards. Its access code is\nHARBOR999CB7, and it changes yearly."
    assert texts(text) == ["It holds fuel cards.", "Its access code is\nHARBOR999CB7, and it changes yearly."]


def test_blank_lines_end_a_paragraph_and_empty_text_has_no_sentences():
    assert texts("First paragraph without a dot\n\nSecond one") == ["First paragraph without a dot", "Second one"]
    assert texts("") == [] and texts("  \n\n ... ") == []


def test_offsets_count_code_points_beyond_the_basic_plane():
    text = "Rocket 🚀 launched. Landing 🛬 at 9."
    spans = sentences.split(text)
    assert [(s.start, s.end) for s in spans] == [(0, 18), (19, len(text))]
    assert text[spans[1].start : spans[1].end] == "Landing 🛬 at 9."


def test_facts_are_numbers_codes_and_names_not_the_first_word():
    assert sentences.facts("The Zerelda vault code is HARBOR999CB7, opened 12 times since 2024.") == [
        "zerelda",
        "harbor999cb7",
        "12",
        "2024",
    ]
    assert sentences.facts("Descaling takes twelve minutes [1].") == ["12"]
    assert sentences.facts("It costs 1,250.50 euros.") == ["1250.50"]
    assert sentences.facts("1. Book the ticket.") == []
    assert sentences.facts("Ask Dr. Smith.") == ["smith"]


def test_addresses_are_one_fact_each_so_a_changed_address_is_not_backed_by_its_parts():
    held = sentences.normalised("Questions go to the people team at people@brightwater.example.")
    assert sentences.facts("Write to people@brightwater.example [1].") == ["people brightwater.example"]
    assert all(f" {fact} " in held for fact in sentences.facts("Write to people@brightwater.example."))
    assert not all(f" {fact} " in held for fact in sentences.facts("Ask the person at person@brightwater.example."))
    assert sentences.facts("See https://kb.example/docs/setup.") == ["https kb.example docs setup"]


def test_address_facts_are_linear_on_long_words():
    code = "from chat import sentences; sentences.facts('a' * 1_000_000); sentences.facts('a.' * 500_000 + '@')"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_number_words_and_digits_are_the_same_fact():
    assert " 3 years " in sentences.normalised("The warranty lasts three years.")
    assert all(f" {fact} " in sentences.normalised("It lasts 3 years.") for fact in sentences.facts("Three years."))


def test_content_words_drop_stop_words_and_stem():
    assert sentences.content_words("How often must the machines be descaled?") == {"often", "machin", "descal"}
    assert sentences.content_words("machine descale") == sentences.content_words("machines descaled")


@pytest.mark.parametrize(
    "adversarial",
    [
        "'e.g. ' * 400_000",
        "' ' * 1_000_000 + 'e.g. ' * 200_000",
        "'1. a ' * 400_000",
        "'A\\nB\\n' * 400_000",
        "'x.' * 1_000_000 + ' '",
        "' ' * 1_000_000 + 'word\\n' + 'A\\n' * 200_000",
        "'   \\n' * 300_000",
    ],
    ids=[
        "abbreviations",
        "space-then-abbreviations",
        "list-numbers",
        "short-lines",
        "dots",
        "spaces-then-lines",
        "blank",
    ],
)
def test_splitting_is_linear_on_adversarial_text(adversarial):
    """Each input is 1–2 M characters: linear splitting takes seconds, a quadratic one hours.
    A subprocess with a generous limit, so a regression fails instead of hanging the run."""
    code = f"from chat import sentences; sentences.split({adversarial})"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
