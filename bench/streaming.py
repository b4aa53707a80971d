"""Streaming answers over the real websocket protocol, against raw llama-cpp-python.

What is measured, and how:

- A small knowledge base (SciFact abstracts: those relevant to the candidate questions, plus
  others, shared with everyone signed in) is ingested in this process, then a real daphne
  (``kb_site.asgi``) serves it on loopback. A websockets client opens
  ``/ws/chat/<conversation>/`` with a Bearer token and asks SciFact test claims through
  ``ask`` events (``docs/websocket-protocol.md``), greedy, a fixed ``max_tokens``, one new
  conversation per question so no history enters the prompt.
- Only claims the site answers with the model are asked: the candidates go through the
  server's own ``answering.find_sources`` first, and those it would answer with the
  not-found message (no model) are skipped; how many were skipped is reported.
- Baseline: the same GGUF opened with ``llama_cpp.Llama`` in a process of its own
  (``bench/raw_llm.py``: no Django, no torch; same context size and threads), streaming
  ``create_chat_completion`` with the same messages and the same sampling (temperature 0,
  top-k 1, top-p 1, min-p 0, repeat penalty 1, same ``max_tokens``).
  The messages are rebuilt here by the server's own functions (``answering.find_sources``
  and ``answering.build_prompt``); the bench checks that the prompt token count equals the
  server's and reports whether the two answers are identical.
- Single stream: each question is asked through the site, then raw, alternately (pairs close
  in time share the machine's load). TTFT is measured by the client (``ask`` sent → first
  ``token`` event: saving the question, retrieval, prompt building and prefill included) and
  by the server (``done.stats.ttft_ms``: prefill only); raw TTFT is call → first streamed
  piece. Tokens/s is decode speed after the first token: (completion tokens − 1) / (last
  token − first token). Each question is distinct, so neither side gets a cached prompt; both
  reuse the shared system prompt prefix from their own KV cache the same way.
- Concurrency 1, 4, 8: that many clients, each a different user (per-user limits apply to
  one person, not to a crowd) on its own conversation with its own question, send ``ask`` at
  the same moment. Reported: answers completed, errors (must be zero),
  ``queued`` events and the longest position seen, client TTFT p50/max (queue wait included),
  per-answer tokens/s, and total tokens/s over the level's wall time.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from unittest import mock

from bench import metrics
from bench.common import (
    BASE_DIR,
    LOGS_DIR,
    free_port,
    progress,
    say,
    site_command,
    start_process,
    stop_process,
    wait_for_port,
)

MAX_TOKENS = 96
LEVELS = (1, 4, 8)
EXTRA_DOCUMENTS = 60
# First questions followed by a follow-up in the same conversation, and the follow-ups tried in
# turn until the server answers one with the model.
FOLLOW_UP_PAIRS = 6
# Per question of a pair: `ask` → first token, `ask` → sources, and the model's own TTFT.
FOLLOW_UP_FIGURES = ("ttft_ms", "sources_ms", "server_ttft_ms", "prompt_tokens", "cached_tokens")
FOLLOW_UPS = ("Tell me more about this.", "Why is that?", "What else do the passages say about it?")
# Claims looked at per claim asked: many get the not-found answer (no model), and are skipped.
CANDIDATES_PER_QUESTION = 3


def run(options, prepared: dict) -> dict:
    import httpx
    from django.conf import settings
    from django.contrib.auth.models import User

    from accounts.services import create_api_token
    from bench import scifact
    from chat.llm import thread_count

    scifact.verify_checksums()
    corpus, queries, qrels = scifact.load_data()
    singles = 3 if options.quick else 6
    levels = (1, 4) if options.quick else LEVELS
    pairs = 3 if options.quick else FOLLOW_UP_PAIRS
    needed = 1 + singles + sum(levels) + pairs
    candidates = list(queries.items())[: needed * CANDIDATES_PER_QUESTION]
    user = User.objects.create_user("bench-stream")
    token = create_api_token(user, name="bench")
    # One user per concurrent client: CHAT_MAX_PENDING_PER_USER limits one person, not a crowd.
    client_tokens = [
        create_api_token(User.objects.create_user(f"bench-stream-{i}"), name="bench") for i in range(max(levels))
    ]
    _ingest(user, corpus, [qrels[qid] for qid, _ in candidates])
    questions, skipped = _answered_by_the_model(user, [text for _, text in candidates], needed)
    port = free_port()
    logs = LOGS_DIR
    server = None
    result: dict = {
        "max_tokens": MAX_TOKENS,
        "mode": "greedy",
        "llm_context": settings.LLM_CONTEXT,
        # The raw baseline and the site use the same threads: LLM_THREADS, or every core.
        "llm_threads": thread_count(settings.LLM_THREADS),
        "llm_threads_setting": settings.LLM_THREADS,
        "llm_parallel": settings.LLM_PARALLEL,
        "candidates_not_found": skipped,
    }
    raw = _RawModel()
    try:
        server = start_process(
            site_command(port),
            env=dict(os.environ),
            log_path=logs / "streaming-daphne.log",
        )
        wait_for_port(port, timeout=60, process=server)
        with httpx.Client(timeout=60) as http:
            site = _Site(f"127.0.0.1:{port}", token, http)
            result["model"] = raw.name
            say("streaming: warming up the server and the raw model")
            warm_question = questions[0]
            asyncio.run(site.ask(warm_question))
            raw.stream(_messages(user, warm_question, raw))
            result["single"] = _single_stream(site, raw, user, questions[1 : 1 + singles])
            offset = 1 + singles
            result["concurrency"] = []
            clients = [_Site(site.host, client_token, http) for client_token in client_tokens]
            for level in levels:
                batch = questions[offset : offset + level]
                offset += level
                result["concurrency"].append(asyncio.run(_concurrent(clients[:level], batch)))
                say(f"streaming: {level} concurrent clients done")
            # Questions of their own: a question asked before may find its prompt cached.
            result["follow_up"] = _follow_ups(site, questions[offset : offset + pairs])
    finally:
        stop_process(server)
        raw.close()
    prompts = [_messages(user, q, raw) for q in questions[: 1 + singles]]
    if not settings.LLM_MODEL_PATH:
        result["weights"] = _weights(prompts)
    result["batched"] = _batched(raw.path, result["llm_threads"], prompts[1])
    return result


def _batched(path: Path, threads: int, messages: list[dict]) -> list[dict]:
    """``bench/batched_llm.py`` on the site's model: aggregate decode speed of several sequences
    decoded together, with one of the server's prompts (its messages' text) in each."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as prompt:
        prompt.write("\n\n".join(message["content"] for message in messages))
        prompt.flush()
        completed = subprocess.run(
            [sys.executable, "-m", "bench.batched_llm", str(path), str(threads), prompt.name],
            capture_output=True,
            text=True,
            cwd=BASE_DIR,
            timeout=600,
        )
    if completed.returncode != 0:
        raise RuntimeError(f"bench.batched_llm failed: {completed.stderr[-2000:]}")
    rows = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    say("streaming: batched decoding measured")
    return rows


def _follow_ups(site: _Site, questions: list[str]) -> dict:
    """Each question, then a follow-up in the same conversation with nothing in between: the
    follow-up's prompt replays the first turn, which the model may still hold in its cache."""
    pairs = []
    for question in progress(questions, desc="streaming: first question, then a follow-up", unit="pair"):
        path = site.new_conversation()
        first = asyncio.run(site.ask(question, socket_path=path))
        for follow_up in FOLLOW_UPS:  # the first one the server answers with the model
            second = asyncio.run(site.ask(follow_up, socket_path=path))
            if second["tokens"] and not second["errors"]:
                break
        else:
            continue
        if first["tokens"] and not first["errors"]:
            pairs.append(
                {
                    "question": question,
                    "follow_up": follow_up,
                    "first_replayed": first.get("replayable", False),
                    **{f"first_{k}": first[k] for k in FOLLOW_UP_FIGURES},
                    **{f"follow_up_{k}": second[k] for k in FOLLOW_UP_FIGURES},
                }
            )
    if not pairs:
        return {"pairs": []}

    def p50(key: str, among: list[dict]) -> float | None:
        values = [p[key] for p in among if p[key] is not None]
        return _round(metrics.median(values)) if values else None

    def ratio(key: str, among: list[dict]) -> float | None:
        return _round(metrics.median([p[f"follow_up_{key}"] / p[f"first_{key}"] for p in among]), 3) if among else None

    replayed = [p for p in pairs if p["first_replayed"]]
    summary = {"replayed": len(replayed)}
    for key in FOLLOW_UP_FIGURES:
        for group, among in (("", pairs), ("replayed_", replayed)):
            summary[f"{group}first_{key}_p50"] = p50(f"first_{key}", among)
            summary[f"{group}follow_up_{key}_p50"] = p50(f"follow_up_{key}", among)
            if key not in ("prompt_tokens", "cached_tokens"):
                summary[f"{group}{key}_ratio_p50"] = ratio(key, among)
    return {
        **summary,
        "pairs": pairs,
    }


def _weights(prompts: list[list[dict]]) -> list[dict]:
    """Raw llama-cpp-python on the bundled model in each ``LLM_BUNDLED_WEIGHTS`` type, on the
    server's prompts (the first one only warms up)."""
    from django.conf import settings

    from chat.llm import local, weights

    rows = []
    for kind in ("shipped", "q8_0", "bf16"):
        path = weights.bundled_model(local.default_model_path(), settings.LLM_CACHE_DIR, kind)
        raw = _RawModel(path)
        try:
            raw.stream(prompts[0])
            answers = [raw.stream(messages) for messages in prompts[1:]]
        finally:
            raw.close()
        rates = [a["tokens_per_s"] for a in answers if a["tokens_per_s"]]
        rows.append(
            {
                "weights": kind,
                "file": path.name,
                "megabytes": round(path.stat().st_size / 1e6),
                "ttft_ms_p50": _round(metrics.median([a["ttft_ms"] for a in answers])),
                "tokens_per_s_p50": _round(metrics.median(rates)) if rates else None,
                "questions": len(answers),
            }
        )
        say(f"streaming: raw llama-cpp-python with {path.name} done")
    return rows


def _ingest(user, corpus: list[dict], relevant: list[dict]) -> None:
    """The questions' relevant abstracts plus ``EXTRA_DOCUMENTS`` others, through the pipeline."""
    from bench.scifact import FILE_PREFIX, document_bytes
    from documents import services, tasks
    from documents.models import Visibility

    wanted = set().union(*relevant)
    chosen = [entry for entry in corpus if entry["_id"] in wanted]
    chosen += [entry for entry in corpus if entry["_id"] not in wanted][:EXTRA_DOCUMENTS]
    with mock.patch.object(services, "request_ingestion", lambda: None):
        for entry in progress(chosen, desc="streaming: knowledge base", unit="doc"):
            document, _ = services.upload_document(
                user,
                file_name=f"{FILE_PREFIX}{entry['_id']}.txt",
                data=document_bytes(entry),
                title=entry["title"].strip()[:300],
                visibility=Visibility.SHARED,
            )
            tasks.ingest_document(document.pk, document.ingest_generation)


def _answered_by_the_model(user, candidates: list[str], needed: int) -> tuple[list[str], int]:
    """The first ``needed`` of ``candidates`` the server answers with the model (its own
    ``find_sources`` decides), and how many it would answer "not found" instead."""
    from chat import answering

    chosen, skipped = [], 0
    for question in candidates:
        if len(chosen) == needed:
            break
        if asyncio.run(answering.find_sources(user, question)).hits:
            chosen.append(question)
        else:
            skipped += 1
    if len(chosen) < needed:
        raise RuntimeError(f"only {len(chosen)} of {len(candidates)} claims get a model answer; {needed} are needed")
    say(f"streaming: {needed} claims answered by the model ({skipped} would get the not-found answer)")
    return chosen, skipped


def _messages(user, question: str, raw) -> list[dict]:
    """The messages the server builds for ``question`` in a new conversation, by its own functions."""
    from chat import answering

    sources = asyncio.run(answering.find_sources(user, question))
    if not sources.hits:
        raise RuntimeError(f"no passage for {question!r}: the server would not call the model")
    return answering.build_prompt(question, sources, [], raw.counter(), _params()).messages


def _params():
    from chat import llm

    return llm.GenerationParams(mode="greedy", max_tokens=MAX_TOKENS)


class _RawModel:
    """Plain llama-cpp-python (``bench/raw_llm.py``) in its own process, fed by this one."""

    def __init__(self, path: Path | None = None) -> None:
        import subprocess

        from django.conf import settings

        from chat import llm

        self.path = path or llm.local_model_path()  # by default the file the site loads
        self.name = self.path.name.removesuffix(".gguf")
        threads = llm.thread_count(settings.LLM_THREADS)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.raw_llm", str(self.path), str(settings.LLM_CONTEXT), str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=BASE_DIR,
        )
        if not json.loads(self.process.stdout.readline() or "{}").get("ready"):
            raise RuntimeError("the raw llama-cpp-python process did not start")
        self._counter = None

    def counter(self):
        """The product's engine, used only to count tokens while rebuilding the prompt."""
        if self._counter is None:
            from chat import llm

            self._counter = llm.get_engine()
        return self._counter

    def stream(self, messages: list[dict]) -> dict:
        penalty = _params().sampler()["repeat_penalty"]  # the site's greedy answers use one
        request = {"messages": messages, "max_tokens": MAX_TOKENS, "repeat_penalty": penalty}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the raw llama-cpp-python process exited")
        answer = json.loads(line)
        span = (answer["last"] - answer["first"]) if answer["first"] is not None else 0
        tokens = answer["tokens"]
        return {
            "ttft_ms": answer["ttft_s"] * 1000 if answer["ttft_s"] is not None else None,
            "tokens": tokens,
            "tokens_per_s": (tokens - 1) / span if tokens > 1 and span > 0 else None,
            "text": answer["text"],
        }

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except Exception:
                self.process.kill()


def _rate(tokens: int, times: list[float]) -> float | None:
    if tokens < 2 or len(times) < 2 or times[-1] <= times[0]:
        return None
    return (tokens - 1) / (times[-1] - times[0])


class _Site:
    """A client of the running site: REST for conversations, websocket for answers."""

    def __init__(self, host: str, token: str, http) -> None:
        self.host = host
        self.auth = {"Authorization": f"Bearer {token}"}
        self.http = http

    def new_conversation(self) -> str:
        response = self.http.post(f"http://{self.host}/api/v1/conversations/", headers=self.auth, json={})
        if response.status_code != 201:
            raise RuntimeError(f"creating a conversation answered {response.status_code}: {response.text[:200]}")
        return response.json()["socket"]

    async def ask(self, question: str, *, socket_path: str | None = None, start: asyncio.Event | None = None) -> dict:
        from websockets.asyncio.client import connect

        from chat.models import worth_replaying

        path = socket_path or self.new_conversation()
        record: dict = {"errors": [], "queued": 0, "max_position": 0, "token_times": [], "text": ""}
        async with connect(f"ws://{self.host}{path}", additional_headers=self.auth, max_size=2**22) as socket:
            if start is not None:
                await start.wait()
            record["sent"] = time.perf_counter()
            await socket.send(
                json.dumps({"type": "ask", "content": question, "params": {"mode": "greedy", "max_tokens": MAX_TOKENS}})
            )
            async for frame in socket:
                event = json.loads(frame)
                kind = event.get("type")
                if kind == "queued":
                    record["queued"] += 1
                    record["max_position"] = max(record["max_position"], event.get("position", 0))
                elif kind == "sources":
                    record["sources_at"] = time.perf_counter()
                elif kind == "token":
                    record["token_times"].append(time.perf_counter())
                    record["text"] += event.get("text", "")
                elif kind == "error":
                    record["errors"].append(event.get("message"))
                    break
                elif kind == "done":
                    record["done"] = time.perf_counter()
                    record["status"] = event.get("status")
                    record["stats"] = event.get("stats") or {}
                    record["replayable"] = worth_replaying(
                        event.get("status"), event.get("finish_reason"), event.get("grounding")
                    )
                    break
        times = record["token_times"]
        stats = record.get("stats", {})
        tokens = stats.get("completion_tokens") or 0
        record.update(
            ttft_ms=(times[0] - record["sent"]) * 1000 if times else None,
            sources_ms=(record["sources_at"] - record["sent"]) * 1000 if "sources_at" in record else None,
            tokens=tokens,
            tokens_per_s=_rate(tokens, times),
            server_ttft_ms=stats.get("ttft_ms"),
            server_tokens_per_s=stats.get("tokens_per_s"),
            prompt_tokens=stats.get("prompt_tokens"),
            cached_tokens=stats.get("cached_tokens"),
        )
        return record


def _single_stream(site: _Site, raw: _RawModel, user, questions: list[str]) -> dict:
    pairs = []
    for question in progress(questions, desc="streaming: single stream, site vs raw", unit="question"):
        product = asyncio.run(site.ask(question))
        if product["errors"] or product.get("status") != "complete":
            raise RuntimeError(f"the site did not answer {question!r}: {product['errors'] or product.get('status')}")
        if not product["tokens"]:
            raise RuntimeError(f"the site answered {question!r} without the model")
        messages = _messages(user, question, raw)
        expected_prompt = raw.counter().count_prompt_tokens(messages)
        baseline = raw.stream(messages)
        pairs.append(
            {
                "question": question,
                "prompt_tokens_site": product["prompt_tokens"],
                "prompt_tokens_rebuilt": expected_prompt,
                "site_ttft_ms": round(product["ttft_ms"], 1),
                "site_sources_ms": round(product["sources_ms"], 1),
                "site_server_ttft_ms": product["server_ttft_ms"],
                "raw_ttft_ms": round(baseline["ttft_ms"], 1),
                "site_tokens": product["tokens"],
                "raw_tokens": baseline["tokens"],
                "site_tokens_per_s": _round(product["tokens_per_s"]),
                "site_server_tokens_per_s": product["server_tokens_per_s"],
                "raw_tokens_per_s": _round(baseline["tokens_per_s"]),
                "same_answer": _same_answer(product, baseline),
            }
        )
    site_ttft = [p["site_ttft_ms"] for p in pairs]
    raw_ttft = [p["raw_ttft_ms"] for p in pairs]
    site_tps = [p["site_tokens_per_s"] for p in pairs if p["site_tokens_per_s"]]
    raw_tps = [p["raw_tokens_per_s"] for p in pairs if p["raw_tokens_per_s"]]
    server_ttft = [p["site_server_ttft_ms"] for p in pairs if p["site_server_ttft_ms"] is not None]
    tps_ratios = [
        p["site_tokens_per_s"] / p["raw_tokens_per_s"]
        for p in pairs
        if p["site_tokens_per_s"] and p["raw_tokens_per_s"]
    ]
    # The first token's delay beyond the sources event (saving the question, retrieval, evidence
    # and the prompt are done by then) and raw prefill of the same prompt.
    beyond = [p["site_ttft_ms"] - p["site_sources_ms"] - p["raw_ttft_ms"] for p in pairs]
    return {
        "site_sources_ms_p50": _round(metrics.median([p["site_sources_ms"] for p in pairs])),
        "ttft_beyond_sources_and_raw_ms_p50": _round(metrics.median(beyond)),
        "ttft_beyond_sources_and_raw_ms_max": _round(max(beyond)),
        "questions": len(pairs),
        "site_ttft_ms_p50": _round(metrics.median(site_ttft)),
        "site_server_ttft_ms_p50": _round(metrics.median(server_ttft)) if server_ttft else None,
        "raw_ttft_ms_p50": _round(metrics.median(raw_ttft)),
        "ttft_ratio_p50": _round(metrics.median([s / r for s, r in zip(site_ttft, raw_ttft, strict=True)]), 3),
        "site_tokens_per_s_p50": _round(metrics.median(site_tps)) if site_tps else None,
        "raw_tokens_per_s_p50": _round(metrics.median(raw_tps)) if raw_tps else None,
        "tokens_per_s_ratio_p50": _round(metrics.median(tps_ratios), 3) if tps_ratios else None,
        "prompt_tokens_match": sum(p["prompt_tokens_site"] == p["prompt_tokens_rebuilt"] for p in pairs),
        "same_answers": sum(bool(p["same_answer"]) for p in pairs),
        "pairs": pairs,
    }


def _same_answer(product: dict, baseline: dict) -> bool:
    return product["text"].strip() == baseline["text"].strip()


async def _concurrent(clients: list[_Site], questions: list[str]) -> dict:
    """Each client (a user of its own) asks one of ``questions`` at the same moment."""
    paths = [await asyncio.to_thread(client.new_conversation) for client in clients]
    start = asyncio.Event()
    tasks = [
        asyncio.ensure_future(client.ask(q, socket_path=p, start=start))
        for client, q, p in zip(clients, questions, paths, strict=True)
    ]
    await asyncio.sleep(0.5)  # every socket is open and waiting
    began = time.perf_counter()
    start.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    wall = time.perf_counter() - began
    records = [o for o in outcomes if isinstance(o, dict)]
    failures = [repr(o) for o in outcomes if not isinstance(o, dict)]
    errors = failures + [message for r in records for message in r["errors"]]
    completed = [r for r in records if r.get("status") == "complete"]
    ttfts = [r["ttft_ms"] for r in records if r["ttft_ms"] is not None]
    # Time before the model started on an answer: the queue, plus saving and retrieval.
    waits = [r["ttft_ms"] - r["server_ttft_ms"] for r in records if r["ttft_ms"] and r["server_ttft_ms"] is not None]
    rates = [r["tokens_per_s"] for r in records if r["tokens_per_s"]]
    total_tokens = sum(r["tokens"] for r in records)
    return {
        "clients": len(questions),
        "completed": len(completed),
        "errors": len(errors),
        "error_messages": errors[:5],
        "queued_events": sum(r["queued"] for r in records),
        "max_queue_position": max((r["max_position"] for r in records), default=0),
        "ttft_ms_p50": _round(metrics.median(ttfts)) if ttfts else None,
        "ttft_ms_max": _round(max(ttfts)) if ttfts else None,
        "wait_ms_p50": _round(metrics.median(waits)) if waits else None,
        "wait_ms_max": _round(max(waits)) if waits else None,
        "tokens_per_s_p50": _round(metrics.median(rates)) if rates else None,
        "total_tokens": total_tokens,
        "wall_seconds": round(wall, 2),
        "aggregate_tokens_per_s": round(total_tokens / wall, 1) if wall else None,
    }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
