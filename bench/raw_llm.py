"""The streaming baseline: plain llama-cpp-python in a process of its own.

``python -m bench.raw_llm MODEL CONTEXT THREADS`` loads the GGUF once, then reads one JSON
request per line on stdin (``{"messages": [...], "max_tokens": N, "repeat_penalty": R}``) and answers each with one
JSON line on stdout: time to first streamed piece, the piece times' span, the text. It imports
neither Django nor torch, so nothing else in the process competes with llama.cpp's threads —
the way anyone would run the library on its own.
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    from llama_cpp import Llama

    model, context, threads = argv[0], int(argv[1]), int(argv[2])
    llama = Llama(model_path=model, n_ctx=context, n_threads=threads, n_threads_batch=threads, verbose=False)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        start = time.perf_counter()
        times, pieces = [], []
        for chunk in llama.create_chat_completion(
            messages=request["messages"],
            stream=True,
            max_tokens=request["max_tokens"],
            temperature=0.0,
            top_k=1,
            top_p=1.0,
            min_p=0.0,
            repeat_penalty=request.get("repeat_penalty", 1.0),  # the site's greedy answers use one
        ):
            text = chunk["choices"][0]["delta"].get("content")
            if text:
                times.append(time.perf_counter())
                pieces.append(text)
        answer = "".join(pieces)
        tokens = len(llama.tokenize(answer.encode(), add_bos=False, special=False))
        print(
            json.dumps(
                {
                    "ttft_s": times[0] - start if times else None,
                    "first": times[0] - start if times else None,
                    "last": times[-1] - start if times else None,
                    "tokens": tokens,
                    "text": answer,
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
