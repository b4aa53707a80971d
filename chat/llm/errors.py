"""What the LLM package raises. Every error's ``message`` is readable by end users."""

from __future__ import annotations


class LLMError(Exception):
    """Base class; ``message`` is readable by end users."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class LLMUnavailable(LLMError):
    """The backend cannot answer: model file missing, server unreachable, HTTP or llama.cpp error."""


class PromptTooLong(LLMError):
    """The prompt plus the tokens reserved for the answer do not fit the model's context."""


class InvalidParams(LLMError, ValueError):
    """Generation settings out of range, of the wrong type, or unknown."""
