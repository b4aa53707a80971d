"""Generation settings: what users may tune, validated, with the site's defaults.

Imports neither llama_cpp nor httpx, so forms and views validate settings without loading a
backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings

from chat.llm.errors import InvalidParams

MODES = ("greedy", "sampling")
SEED_MAX = 2**32 - 1
DEFAULT_MAX_TOKENS = 256
# llama.cpp's own default for the filter users do not tune here.
_MIN_P = 0.05


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidParams(f"{name} must be a number between {low:g} and {high:g}, got {value!r}.")
    return float(value)


def _whole(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParams(f"{name} must be a whole number between {low} and {high}, got {value!r}.")
    return value


@dataclass(frozen=True)
class GenerationParams:
    """How to sample an answer. Construction validates (``InvalidParams``).

    ``mode="greedy"`` always picks the most likely token (temperature 0, top-k 1: the same
    answer every time); the other sampling values are kept, so switching back to
    ``"sampling"`` restores them, but they are not used. ``seed`` makes sampling repeatable.
    ``max_tokens`` defaults to min(256, ``LLM_MAX_TOKENS``).
    """

    mode: str = "greedy"
    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    max_tokens: int = None  # type: ignore[assignment]  # filled in __post_init__
    seed: int | None = None

    def __post_init__(self) -> None:
        limit = settings.LLM_MAX_TOKENS
        if self.mode not in MODES:
            raise InvalidParams(f'mode must be "greedy" or "sampling", got {self.mode!r}.')
        set_ = object.__setattr__  # frozen dataclass: normalise in place once
        set_(self, "temperature", _number("temperature", self.temperature, 0, 2))
        set_(self, "top_k", _whole("top_k", self.top_k, 1, 100))
        set_(self, "top_p", _number("top_p", self.top_p, 0, 1))
        max_tokens = min(DEFAULT_MAX_TOKENS, limit) if self.max_tokens is None else self.max_tokens
        set_(self, "max_tokens", _whole("max_tokens", max_tokens, 1, limit))
        if self.seed is not None:
            set_(self, "seed", _whole("seed", self.seed, 0, SEED_MAX))

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None, defaults: GenerationParams | Mapping[str, Any] | None = None
    ) -> GenerationParams:
        """Validate user-supplied settings (e.g. a websocket frame's ``params``).

        Keys missing from ``data`` come from ``defaults`` (e.g. the conversation's remembered
        settings), then from the class defaults. Raises ``InvalidParams`` naming the bad key.
        """
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise InvalidParams("Generation settings must be a JSON object.")
        allowed = [f for f in cls.__dataclass_fields__]
        unknown = sorted(str(key) for key in data if key not in allowed)
        if unknown:
            raise InvalidParams(f"Unknown generation setting {unknown[0]!r} (allowed: {', '.join(allowed)}).")
        if isinstance(defaults, GenerationParams):
            defaults = defaults.to_dict()
        merged = {key: value for key, value in (defaults or {}).items() if key in allowed}
        merged.update(data)
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def greedy(self) -> bool:
        return self.mode == "greedy" or self.temperature == 0

    def sampler(self) -> dict[str, float | int]:
        """The values llama.cpp samples with (greedy: temperature 0, top-k 1)."""
        # The repeat penalty is the operator's (LLM_REPEAT_PENALTY), not a user's choice.
        penalty = {"repeat_penalty": settings.LLM_REPEAT_PENALTY}
        if self.greedy:
            return {"temperature": 0.0, "top_k": 1, "top_p": 1.0, "min_p": 0.0, **penalty}
        return {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p, "min_p": _MIN_P, **penalty}


def remembered_params(saved: Mapping[str, Any] | None) -> GenerationParams:
    """A conversation's remembered settings, complete with defaults.

    Settings that no longer validate (saved under older limits, e.g. before ``LLM_MAX_TOKENS``
    was lowered, or not a mapping at all) give way to the site defaults as a whole rather than
    raising: the user chose them once and should not be locked out by a later change.
    """
    try:
        return GenerationParams.from_dict(saved)
    except InvalidParams:
        return GenerationParams()
