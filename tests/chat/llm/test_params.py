"""Generation settings: validation with clear messages, defaults, the sampler llama.cpp gets,
and the conversation's remembered settings falling back to the site defaults."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chat.llm.errors import InvalidParams
from chat.llm.params import GenerationParams, remembered_params

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"mode": "creative"}, 'mode must be "greedy" or "sampling"'),
        ({"temperature": 2.5}, "temperature must be a number between 0 and 2"),
        ({"temperature": -0.1}, "temperature must be a number between 0 and 2"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"temperature": float("nan")}, "temperature must be a number"),
        ({"top_k": 0}, "top_k must be a whole number between 1 and 100"),
        ({"top_k": 101}, "top_k must be a whole number between 1 and 100"),
        ({"top_k": 4.5}, "top_k must be a whole number"),
        ({"top_k": True}, "top_k must be a whole number"),
        ({"top_p": 1.01}, "top_p must be a number between 0 and 1"),
        ({"max_tokens": 0}, "max_tokens must be a whole number between 1 and 512"),
        ({"max_tokens": 513}, "max_tokens must be a whole number between 1 and 512"),
        ({"max_tokens": "100"}, "max_tokens must be a whole number"),
        ({"seed": -1}, "seed must be a whole number between 0 and 4294967295"),
        ({"seed": 2**32}, "seed must be a whole number"),
        ({"temprature": 1}, "Unknown generation setting 'temprature'"),
    ],
)
def test_out_of_range_or_unknown_settings_are_refused_with_a_clear_message(settings, params, message):
    settings.LLM_MAX_TOKENS = 512
    with pytest.raises(InvalidParams, match=re.escape(message)):
        GenerationParams.from_dict(params)


def test_settings_must_be_an_object():
    with pytest.raises(InvalidParams, match="must be a JSON object"):
        GenerationParams.from_dict(["greedy"])


def test_valid_settings_round_trip_and_fill_in_from_defaults(settings):
    settings.LLM_MAX_TOKENS = 512
    remembered = GenerationParams(mode="sampling", temperature=0.3, top_k=20, top_p=0.8, max_tokens=100)

    params = GenerationParams.from_dict({"temperature": 1.5, "seed": 42, "top_k": 50.0}, defaults=remembered)

    assert params.to_dict() == {
        "mode": "sampling",
        "temperature": 1.5,
        "top_k": 50,
        "top_p": 0.8,
        "max_tokens": 100,
        "seed": 42,
    }
    assert GenerationParams.from_dict(params.to_dict()) == params
    assert GenerationParams.from_dict(None).to_dict() == {
        "mode": "greedy",
        "temperature": 0.7,
        "top_k": 40,
        "top_p": 0.95,
        "max_tokens": 256,
        "seed": None,
    }


def test_greedy_samples_like_llama_cpp_greedy_whatever_the_sampling_values(settings):
    greedy = GenerationParams.from_dict({"mode": "greedy", "temperature": 1.8, "top_k": 90})
    zero_temperature = GenerationParams.from_dict({"mode": "sampling", "temperature": 0})
    sampling = GenerationParams.from_dict({"mode": "sampling", "temperature": 0.9, "top_k": 30, "top_p": 0.5})

    assert greedy.sampler()["temperature"] == 0 and greedy.sampler()["top_k"] == 1
    assert zero_temperature.sampler()["top_k"] == 1
    settings.LLM_REPEAT_PENALTY = 1.15  # the operator's choice, in greedy and sampling alike
    assert sampling.sampler() == {"temperature": 0.9, "top_k": 30, "top_p": 0.5, "min_p": 0.05, "repeat_penalty": 1.15}
    assert greedy.sampler()["repeat_penalty"] == 1.15
    assert greedy.temperature == 1.8  # kept for when the user switches back to sampling


def test_default_max_tokens_never_exceeds_the_setting(settings):
    settings.LLM_MAX_TOKENS = 64
    assert GenerationParams().max_tokens == 64


# --- Remembered settings -----------------------------------------------------------------------


def test_remembered_settings_are_completed_with_the_defaults(settings):
    settings.LLM_MAX_TOKENS = 512

    params = remembered_params({"mode": "sampling", "temperature": 1.1, "max_tokens": 400})

    assert params == GenerationParams(mode="sampling", temperature=1.1, max_tokens=400)
    assert params.top_k == 40 and params.seed is None


def test_a_conversation_without_remembered_settings_gets_the_site_defaults(settings):
    settings.LLM_MAX_TOKENS = 512

    assert remembered_params(None) == remembered_params({}) == GenerationParams()


@pytest.mark.parametrize(
    "saved",
    [
        {"mode": "sampling", "temperature": 1.1, "max_tokens": 400},  # saved when the limit was higher
        {"mode": "sampling", "retired_setting": 3},
        ["not", "an", "object"],
    ],
)
def test_remembered_settings_that_no_longer_validate_give_way_to_the_site_defaults(settings, saved):
    settings.LLM_MAX_TOKENS = 300

    params = remembered_params(saved)

    assert params == GenerationParams()
    assert params.mode == "greedy" and params.max_tokens == 256


def test_settings_validate_without_loading_a_language_model_backend():
    """Forms and views import ``chat.llm`` to validate; neither llama_cpp nor httpx may come along."""
    script = textwrap.dedent(
        """
        import sys

        from django.conf import settings

        settings.configure(LLM_MAX_TOKENS=512)
        from chat import llm
        from chat.llm.params import GenerationParams

        GenerationParams.from_dict({"mode": "sampling", "max_tokens": 100})
        llm.GenerationParams, llm.InvalidParams, llm.Engine, llm.get_engine
        print(sorted(name for name in ("httpx", "llama_cpp") if name in sys.modules))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
