"""Does llama.cpp's batched decoding of several sequences raise aggregate tokens/s here?

``python -m bench.batched_llm MODEL THREADS PROMPT_FILE`` loads the GGUF once through
llama.cpp's own C API (llama-cpp-python's ``Llama`` decodes one sequence), with one KV-cache
sequence per stream. For each stream count it reads the same prompt into every sequence, then
decodes ``STEPS`` greedy tokens per sequence, one ``llama_decode`` call per step carrying one
token of every sequence, and prints one JSON line: streams, steps, seconds, aggregate and
per-stream tokens/s. Prompt reading is not timed. No Django, no torch.
"""

from __future__ import annotations

import ctypes
import json
import sys
import time
from pathlib import Path

STREAMS = (1, 2, 4, 8)
STEPS = 64


def main(argv: list[str]) -> int:
    import llama_cpp
    import numpy as np

    path, threads, prompt_file = argv[0], int(argv[1]), argv[2]
    llama_cpp.llama_backend_init()
    model_params = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(path.encode(), model_params)
    vocab = llama_cpp.llama_model_get_vocab(model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    text = Path(prompt_file).read_text(encoding="utf-8").encode()
    buffer = (llama_cpp.llama_token * 4096)()
    n_prompt = llama_cpp.llama_tokenize(vocab, text, len(text), buffer, 4096, True, True)
    prompt = list(buffer[:n_prompt])
    for streams in STREAMS:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = streams * (n_prompt + STEPS + 16)
        params.n_batch = max(512, n_prompt)
        params.n_seq_max = streams
        params.n_threads = params.n_threads_batch = threads
        ctx = llama_cpp.llama_init_from_model(model, params)
        batch = llama_cpp.llama_batch_init(max(n_prompt, streams), 0, streams)
        try:
            last = []
            for seq in range(streams):  # the same prompt into each sequence, untimed
                batch.n_tokens = n_prompt
                for i, token in enumerate(prompt):
                    batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, i, 1
                    batch.seq_id[i][0] = seq
                    batch.logits[i] = i == n_prompt - 1
                if llama_cpp.llama_decode(ctx, batch) != 0:
                    raise RuntimeError("prompt decode failed")
                last.append(_argmax(llama_cpp, np, ctx, n_prompt - 1, n_vocab))
            started = time.perf_counter()
            for step in range(STEPS):
                batch.n_tokens = streams
                for seq in range(streams):
                    batch.token[seq], batch.pos[seq], batch.n_seq_id[seq] = last[seq], n_prompt + step, 1
                    batch.seq_id[seq][0] = seq
                    batch.logits[seq] = True
                if llama_cpp.llama_decode(ctx, batch) != 0:
                    raise RuntimeError("decode failed")
                last = [_argmax(llama_cpp, np, ctx, seq, n_vocab) for seq in range(streams)]
            seconds = time.perf_counter() - started
        finally:
            llama_cpp.llama_batch_free(batch)
            llama_cpp.llama_free(ctx)
        print(
            json.dumps(
                {
                    "streams": streams,
                    "steps": STEPS,
                    "prompt_tokens": n_prompt,
                    "seconds": round(seconds, 3),
                    "aggregate_tokens_per_s": round(streams * STEPS / seconds, 1),
                    "per_stream_tokens_per_s": round(STEPS / seconds, 1),
                }
            ),
            flush=True,
        )
    llama_cpp.llama_model_free(model)
    return 0


def _argmax(llama_cpp, np, ctx, index: int, n_vocab: int) -> int:
    logits = llama_cpp.llama_get_logits_ith(ctx, index)
    return int(np.argmax(np.ctypeslib.as_array(ctypes.cast(logits, ctypes.POINTER(ctypes.c_float)), (n_vocab,))))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
