"""From chat messages to the prompt a model is fed, and how many tokens that takes.

``_GGUFChat`` renders with the chat template stored in a GGUF (metadata
``tokenizer.chat_template``) and tokenizes with the GGUF's vocabulary: counts are exact. It
reads the vocabulary through ``chat.llm.local.LlamaInternals``, the one place that knows
llama-cpp-python's private attributes.

``_EstimatedChat`` serves the remote backend when no local copy of the server's GGUF is
configured: counts are a conservative estimate (one token per ``_ESTIMATE_BYTES_PER_TOKEN``
bytes of UTF-8 plus allowances for the template's own tokens). English text averages about four
bytes per token, so the estimate leaves spare room rather than overflowing.

Both defuse message text that spells a control token (``<|im_end|>``...) with ``defuse``, so a
document cannot forge a turn of the conversation; counting and generation both see the defused
text, so counts stay exact.
"""

from __future__ import annotations

import logging
import math
import re
from typing import TYPE_CHECKING

from chat.llm.engine import Messages
from chat.llm.errors import LLMUnavailable

if TYPE_CHECKING:
    from chat.llm.local import LlamaInternals

log = logging.getLogger("chat.llm")

_ESTIMATE_BYTES_PER_TOKEN = 3
_ESTIMATE_TOKENS_PER_MESSAGE = 8
# Templates add text of their own: SmolLM2 a default system prompt, Llama 3.1 a knowledge date.
_ESTIMATE_TEMPLATE_TOKENS = 48
# Strings that chat templates of common model families treat as control tokens; used to defuse
# them in message text when the vocabulary is unknown (remote backend without a local GGUF).
_GENERIC_CONTROL = re.compile(r"<\|[A-Za-z0-9_]+\|>|</?s>|\[/?INST\]|<</?SYS>>")
_ZWSP = "\u200b"


def defuse(messages: Messages, control: re.Pattern[str]) -> Messages:
    """Copies of ``messages`` with a zero-width space after the first character of every match
    of ``control`` (an empty pattern: no control tokens, the text is kept as it is)."""
    if not control.pattern:
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    return [
        {"role": m["role"], "content": control.sub(lambda x: x[0][0] + _ZWSP + x[0][1:], m["content"])}
        for m in messages
    ]


def _fold_system(messages: Messages) -> Messages:
    if len(messages) > 1 and messages[0]["role"] == "system" and messages[1]["role"] == "user":
        first = {"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}
        return [first, *messages[2:]]
    return messages


class _GGUFChat:
    """A GGUF's tokenizer and chat template (from its metadata ``tokenizer.chat_template``).

    Text inside messages that spells one of the vocabulary's control tokens gets defused (see
    ``defuse``).
    """

    # Used when a GGUF carries no template: ChatML, the most common instruct format.
    FALLBACK_TEMPLATE = (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
        " + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )

    def __init__(self, internals: LlamaInternals):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llama = llama = internals.llama
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            log.warning("the GGUF has no chat template; using ChatML")
            template = self.FALLBACK_TEMPLATE
        self.formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=internals.token_text(llama.token_eos()),
            bos_token=internals.token_text(llama.token_bos()),
        )
        control = internals.control_texts()
        self.control = re.compile("|".join(re.escape(text) for text in sorted(control, key=len, reverse=True)))
        self._fold_system = False

    def render(self, messages: Messages) -> tuple[Messages, str]:
        """The messages as the model will see them, and the prompt text the template makes of them.

        Some templates (older Mistral ones) refuse a system message; then the instructions are
        folded into the first user message, which is what those models were trained on.
        """
        messages = defuse(messages, self.control)
        if self._fold_system:
            messages = _fold_system(messages)
        try:
            return messages, self.formatter(messages=messages).prompt
        except Exception as exc:  # the template's own raise_exception (e.g. roles must alternate)
            folded = _fold_system(messages)
            if folded != messages:
                try:
                    prompt = self.formatter(messages=folded).prompt
                except Exception:  # noqa: S110 - the original error is the one worth reporting
                    pass
                else:
                    log.info("the chat template refuses system messages; folding them into the first question")
                    self._fold_system = True
                    return folded, prompt
            raise LLMUnavailable(f"The model's chat template rejected the conversation: {exc}") from exc

    def prompt_tokens(self, messages: Messages) -> list[int]:
        return self.tokenize_prompt(self.render(messages)[1])

    def tokenize_prompt(self, prompt: str) -> list[int]:
        # special=True: the template's control tokens become tokens; it adds BOS itself if it wants one.
        return self.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def count_prompt(self, prompt: str) -> int:
        return len(self.tokenize_prompt(prompt))

    def count(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))


class _EstimatedChat:
    """Conservative token counts for a server whose tokenizer we do not have (see module doc)."""

    def count(self, text: str) -> int:
        return math.ceil(len(text.encode("utf-8")) / _ESTIMATE_BYTES_PER_TOKEN)

    def defuse(self, messages: Messages) -> Messages:
        return defuse(messages, _GENERIC_CONTROL)

    def prompt_count(self, messages: Messages) -> int:
        body = sum(self.count(m["content"]) + _ESTIMATE_TOKENS_PER_MESSAGE for m in messages)
        return body + _ESTIMATE_TEMPLATE_TOKENS
