"""Answers a user can trust: the project's golden set asked through the real websocket protocol.

What is measured, and how:

- The golden documents (``bench/golden``: seven documents with invented facts, in PDF, Word,
  Markdown, HTML and plain text, rendered at bench time) are uploaded with
  ``POST /api/v1/documents/`` and a Bearer token to a real daphne (``python -m kb_site.serve``,
  as deployments start it) and ingested by a real ``manage.py qcluster``: the product's upload
  and ingestion path. The worker is stopped once every document is ``ready``, before the first
  question.
- Every question goes through ``/ws/chat/<conversation>/`` as in docs/websocket-protocol.md, as
  the documents' owner: one new conversation per question, and both questions of a follow-up
  pair in one conversation (one socket, the second asked after the first's ``done``). One
  client at a time, after a warm-up question, so the server is otherwise idle. ``params`` sends
  only ``max_tokens`` (``MAX_TOKENS``); everything else is the site's default
  (``BENCH_ANSWERS_PARAMS``, a JSON object, adds or overrides keys, to compare settings).
- Each answer is scored from its events (``score_answer``): the ``evidence`` text and the
  final answer (``done.content``, or the concatenated tokens while the server sends no
  ``content``) are searched for the expected facts (``states_fact``: any of the fact's
  spellings, as whole words, case and spacing ignored); citations are the ``[n]`` markers of the
  answer plus the ``sources`` of its ``done.grounding`` entries; a loop is ``finish_reason``
  ``"loop"`` or the same 30-character piece three times in the streamed text. Times run from
  sending ``ask`` to the arrival of ``sources``, ``evidence`` and the first ``token``.
- Grounding precision and recall come from calling the grounding check directly on the
  planted sentences (``check_sentences``, the one adapter to ``chat.grounding``), each against
  the sources the server sent for the claim's question in this run (or, for a question not
  asked, e.g. with ``--quick``, those ``retrieval.search`` returns for it in this process).
  Positives are the sentences with a planted wrong fact; a flagged (unsupported) positive is a
  true positive, a flagged true sentence or paraphrase a false positive.

A server that leaves out a field of the protocol (``evidence``, ``highlight``, ``done.content``,
``done.grounding``, ``done.finish_reason``; an older version, or another implementation) is
scored as far as it can be: the missing field counts as absent, and the report says how many
answers carried each field.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
import unicodedata
from collections.abc import Iterable, Sequence

from bench import golden, metrics
from bench.common import LOGS_DIR, free_port, progress, say, site_command, start_process, stop_process, wait_for_port
from bench.golden import Question
from bench.golden.questions import Fact, PlantedSentence

MAX_TOKENS = 160
ANSWER_TIMEOUT = 300  # seconds without an event before an answer counts as failed
# chat.prompting.NOT_FOUND_ANSWER (tests/bench/test_answers.py keeps the two equal).
NOT_FOUND_ANSWER = "I could not find this in the knowledge base."
LOOP_LENGTH = 30
LOOP_TIMES = 3
WARM_UP_QUESTION = "What does the handbook say about the office fridges?"
USERNAME = "bench-answers"
# Settings that shape an answer, reported with the figures (secrets and URLs never are).
VARIANT_SETTINGS = ("LLM_BUNDLED_WEIGHTS", "RETRIEVAL_K", "LLM_PASSAGE_MAX_TOKENS", "PROMPT_PASSAGE_SCOPE")
_SETTING_PREFIXES = ("LLM_", "RETRIEVAL_", "EMBEDDING_", "CHUNK_", "GROUNDING_", "EVIDENCE_", "FOLLOW_UP", "ANSWER_")
_SECRET_SETTING = re.compile(r"KEY|SECRET|PASSWORD|URL", re.I)


# --- Scoring: pure functions (tests/bench/test_answers.py) ----------------------------------

_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2212"), "-")
_QUOTES = dict.fromkeys(map(ord, "\u2018\u2019\u201b\u2032"), "'")
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def normalize(text: str) -> str:
    """``text`` for matching: Unicode-compatible forms, case folded, one kind of dash and
    apostrophe, white space runs as one space."""
    text = unicodedata.normalize("NFKC", text or "").translate(_DASHES).translate(_QUOTES)
    return " ".join(text.casefold().split())


def states_fact(text: str, fact: Fact) -> bool:
    """Whether ``text`` states ``fact``: one of its spellings occurs as whole words (so "4.2 MW"
    is not found in "14.2 MW", nor "45 days" in "145 days")."""
    haystack = normalize(text)
    for spelling in fact:
        needle = normalize(spelling)
        if needle and re.search(rf"(?<![\w.]){re.escape(needle)}(?![\w])", haystack):
            return True
    return False


def states_facts(text: str, facts: Iterable[Fact]) -> bool:
    """Whether ``text`` states every one of ``facts`` (and there is at least one)."""
    facts = list(facts)
    return bool(facts) and all(states_fact(text, fact) for fact in facts)


def says_not_found(text: str) -> bool:
    """Whether the answer is (or contains) the product's not-found answer."""
    return normalize(NOT_FOUND_ANSWER).rstrip(".") in normalize(text)


def find_loop(text: str, length: int = LOOP_LENGTH, times: int = LOOP_TIMES) -> str | None:
    """The first piece of ``length`` characters that occurs ``times`` times in ``text`` without
    overlapping itself, or ``None``: a model repeating itself."""
    if length <= 0 or times < 2:
        raise ValueError("a loop is at least 2 repeats of at least 1 character")
    last_end: dict[str, int] = {}
    counts: dict[str, int] = {}
    for start in range(len(text) - length + 1):
        piece = text[start : start + length]
        if start < last_end.get(piece, 0):
            continue  # overlaps the previous occurrence
        counts[piece] = counts.get(piece, 0) + 1
        last_end[piece] = start + length
        if counts[piece] >= times:
            return piece
    return None


def cited_numbers(text: str) -> set[int]:
    """The source numbers an answer cites: ``[1]``, ``[2, 3]``."""
    return {int(n) for group in _CITATION.findall(text or "") for n in group.split(",")}


def answer_text(record: dict) -> str:
    """The answer as saved (``done.content``), else the streamed tokens joined."""
    done = record.get("done") or {}
    content = done.get("content")
    return content if isinstance(content, str) else record.get("text", "")


def score_answer(question: Question, record: dict, document_ids: dict[str, str], *, role: str) -> dict:
    """One answer's figures. ``record`` holds the events of one ``ask`` (``bench.answers.ask``);
    ``document_ids`` maps golden document keys to the ids the server gave them; ``role`` is
    ``single``, ``first`` or ``follow_up`` (of a pair) or ``unanswerable``."""
    done = record.get("done") or {}
    text = answer_text(record)
    sources = record.get("sources") or []
    by_n = {source.get("n"): source for source in sources}
    evidence = record.get("evidence")
    grounding = done.get("grounding") if isinstance(done.get("grounding"), list) else None
    expected_id = document_ids.get(question.document) if question.document else None
    cited = cited_numbers(text)
    for entry in grounding or []:
        cited.update(n for n in entry.get("sources") or [] if isinstance(n, int))
    cited_documents = {by_n[n].get("document") for n in cited if n in by_n}
    flagged = sum(not entry.get("supported", True) for entry in grounding) if grounding is not None else None
    not_found = says_not_found(text)
    loop = find_loop(record.get("text", ""))
    first = sources[0] if sources else None
    score = {
        "id": question.id,
        "role": role,
        "question": question.text,
        "document": question.document,
        "answer": text,
        "error": record.get("error"),
        "status": done.get("status"),
        "finish_reason": done.get("finish_reason"),
        "model_called": bool((done.get("stats") or {}).get("model")),
        "sources": len(sources),
        "highlights": sum(bool(source.get("highlight")) for source in sources),
        "evidence": evidence.get("text") if evidence else None,
        "has_content": isinstance(done.get("content"), str),
        "not_found": not_found,
        "grounding_sentences": len(grounding) if grounding is not None else None,
        "flagged": flagged,
        "looping": done.get("finish_reason") == "loop" or loop is not None,
        "repeated": loop,
        "sources_ms": record.get("sources_ms"),
        "evidence_ms": record.get("evidence_ms"),
        "first_token_ms": record.get("first_token_ms"),
        "done_ms": record.get("done_ms"),
    }
    if question.answerable:
        states = states_facts(text, question.facts)
        score.update(
            evidence_has_fact=bool(evidence) and states_facts(evidence.get("text", ""), question.facts),
            answer_has_fact=states,
            cites_anything=bool(cited_documents),
            citation_right=expected_id in cited_documents,
            first_source_right=bool(first) and first.get("document") == expected_id,
            first_source_has_fact=bool(first) and states_facts(first.get("text", ""), question.facts),
            trustworthy=states or not_found or bool(flagged),
        )
    else:
        score.update(trustworthy=not_found or bool(flagged))
    return score


def _share(values: Sequence[bool]) -> float | None:
    return round(sum(bool(v) for v in values) / len(values), 3) if values else None


def _count(values: Sequence[bool]) -> dict:
    return {"count": sum(bool(v) for v in values), "of": len(values), "share": _share(values)}


def _spread(values: Sequence[float | None]) -> dict:
    present = [value for value in values if value is not None]
    if not present:
        return {"p50": None, "p95": None, "n": 0}
    return {
        "p50": round(metrics.percentile(present, 50), 1),
        "p95": round(metrics.percentile(present, 95), 1),
        "n": len(present),
    }


def summarize(scores: Sequence[dict]) -> dict:
    """The section's figures from every answer's ``score_answer``."""
    answerable = [s for s in scores if s["role"] != "unanswerable"]
    unanswerable = [s for s in scores if s["role"] == "unanswerable"]
    standalone = [s for s in answerable if s["role"] in ("single", "first")]
    follow_ups = [s for s in answerable if s["role"] == "follow_up"]
    grounded = [s for s in scores if s["grounding_sentences"] is not None]
    called = [s for s in scores if s["model_called"]]
    return {
        "answers": len(scores),
        "errors": sum(bool(s["error"]) for s in scores),
        "evidence_accuracy": _count([s["evidence_has_fact"] for s in answerable]),
        "answer_accuracy": _count([s["answer_has_fact"] for s in answerable]),
        "trustworthy": _count([s["trustworthy"] for s in scores]),
        "trustworthy_answerable": _count([s["trustworthy"] for s in answerable]),
        "trustworthy_unanswerable": _count([s["trustworthy"] for s in unanswerable]),
        "citation_accuracy": _count([s["citation_right"] for s in answerable]),
        "cites_anything": _count([s["cites_anything"] for s in answerable]),
        "looping": _count([s["looping"] for s in scores]),
        "not_found_unanswerable": _count([s["not_found"] for s in unanswerable]),
        # A quoted sentence shown for a question the documents cannot answer.
        "evidence_on_unanswerable": _count([s["evidence"] is not None for s in unanswerable]),
        "false_not_found": _count([s["not_found"] for s in answerable]),
        "retrieval_first_source_right": _count([s["first_source_right"] for s in standalone]),
        "retrieval_first_source_has_fact": _count([s["first_source_has_fact"] for s in standalone]),
        "follow_up_first_source_right": _count([s["first_source_right"] for s in follow_ups]),
        "follow_up_first_source_has_fact": _count([s["first_source_has_fact"] for s in follow_ups]),
        "follow_up_answer_accuracy": _count([s["answer_has_fact"] for s in follow_ups]),
        "protocol": {
            "evidence_events": sum(s["evidence"] is not None for s in scores),
            "sources_with_highlight": sum(s["highlights"] for s in scores),
            "sources": sum(s["sources"] for s in scores),
            "done_with_content": sum(s["has_content"] for s in scores),
            "done_with_grounding": len(grounded),
            "done_with_finish_reason": sum(s["finish_reason"] is not None for s in scores),
        },
        "live_grounding": {
            "answers": len(grounded),
            "sentences": sum(s["grounding_sentences"] for s in grounded),
            "flagged_sentences": sum(s["flagged"] for s in grounded),
            "answers_with_flags": sum(bool(s["flagged"]) for s in grounded),
            # Flags on answers that state the expected fact: often a false alarm (or a second,
            # wrong sentence next to the right one).
            "answers_stating_fact_with_flags": sum(
                bool(s["flagged"]) and bool(s.get("answer_has_fact")) for s in grounded
            ),
        },
        "ms_to_sources": _spread([s["sources_ms"] for s in scores]),
        "ms_to_evidence": _spread([s["evidence_ms"] for s in scores]),
        # Only answers the model wrote: the not-found answer is one token sent without it.
        "ms_to_first_token": _spread([s["first_token_ms"] for s in called]),
        "ms_to_done": _spread([s["done_ms"] for s in called]),
    }


def grounding_scores(planted: Sequence[PlantedSentence], flags: Sequence[bool]) -> dict:
    """Precision and recall of ``flags`` (True: the check found the sentence unsupported) for
    finding the planted wrong sentences, and the share flagged of each kind."""
    if len(planted) != len(flags):
        raise ValueError("one flag per planted sentence")
    true_positives = sum(sentence.wrong and flag for sentence, flag in zip(planted, flags, strict=True))
    flagged = sum(flags)
    wrong = sum(sentence.wrong for sentence in planted)
    kinds = {}
    for kind in ("invented", "swapped", "correct", "paraphrase"):
        chosen = [flag for sentence, flag in zip(planted, flags, strict=True) if sentence.kind == kind]
        kinds[kind] = {"flagged": sum(chosen), "of": len(chosen)}
    return {
        "sentences": len(planted),
        "wrong": wrong,
        "flagged": flagged,
        "true_positives": true_positives,
        "precision": round(true_positives / flagged, 3) if flagged else None,
        "recall": round(true_positives / wrong, 3) if wrong else None,
        "by_kind": kinds,
    }


# --- The grounding check, called directly ---------------------------------------------------


def check_sentences(sentences: Sequence[str], sources: Sequence[dict], question: str = "") -> list[bool]:
    """For each sentence, whether the grounding check finds it supported by ``sources``.

    The one adapter to ``chat.grounding``: ``check(answer, [(n, text), ...], question=...,
    evidence_texts=...)`` returns a ``Grounded`` whose ``sentences`` are ``{"text", "supported",
    "sources"}`` dicts, as the server calls it on a finished answer with the passages it gave the
    model, the question and the sources' highlighted sentences. Each planted sentence is checked
    as an answer of its own, against the sources as the ``sources`` event lists them; a sentence
    the checker splits in two is supported only when both parts are.
    """
    from chat import grounding

    pairs = [(source["n"], source["text"], source.get("title", "")) for source in sources]
    quoted = [mark["text"] for source in sources for mark in source.get("highlight") or []]
    verdicts = []
    for sentence in sentences:
        checked = grounding.check(sentence, pairs, question=question, evidence_texts=quoted)
        if not checked.sentences:
            raise RuntimeError(f"chat.grounding.check returned no sentence for {sentence!r}")
        verdicts.append(all(entry["supported"] for entry in checked.sentences))
    return verdicts


def score_grounding(planted: Sequence[PlantedSentence], sources_for) -> dict:
    """Run the direct check on every planted sentence; ``sources_for(question id)`` gives the
    sources to check against. A failing check is reported in ``error``: the live figures stay."""
    questions = golden.all_questions()
    try:
        supported = [
            check_sentences([sentence.text], sources_for(sentence.question), questions[sentence.question].text)[0]
            for sentence in planted
        ]
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    result = grounding_scores(planted, [not ok for ok in supported])
    result["misses"] = [
        {"question": s.question, "kind": s.kind, "text": s.text, "flagged": not ok}
        for s, ok in zip(planted, supported, strict=True)
        if s.wrong == ok
    ]
    return result


# --- The run ---------------------------------------------------------------------------------


def plan(quick: bool = False) -> list[tuple[str, list[tuple[Question, str]]]]:
    """The conversations to hold, in order: ``(label, [(question, role), ...])``."""
    singles = golden.QUESTIONS[::4] if quick else golden.QUESTIONS
    pairs = golden.FOLLOW_UPS[:3] if quick else golden.FOLLOW_UPS
    unanswerable = golden.UNANSWERABLE[::3] if quick else golden.UNANSWERABLE
    conversations = [(q.id, [(q, "single")]) for q in singles]
    conversations += [(p.id, [(p.first, "first"), (p.follow_up, "follow_up")]) for p in pairs]
    conversations += [(q.id, [(q, "unanswerable")]) for q in unanswerable]
    return conversations


def ask_params() -> dict:
    params = {"max_tokens": MAX_TOKENS}
    extra = os.environ.get("BENCH_ANSWERS_PARAMS", "").strip()
    if extra:
        params.update(json.loads(extra))
    return params


async def ask(socket, question: str, params: dict, *, timeout: float = ANSWER_TIMEOUT) -> dict:
    """Send one ``ask`` on an open socket and collect its events until ``done`` or ``error``."""
    record: dict = {"question": question, "sources": None, "evidence": None, "text": "", "done": None, "error": None}
    sent = time.perf_counter()

    def elapsed() -> float:
        return round((time.perf_counter() - sent) * 1000, 1)

    await socket.send(json.dumps({"type": "ask", "content": question, "params": params}))
    while True:
        try:
            frame = await asyncio.wait_for(socket.recv(), timeout)
        except TimeoutError:
            record["error"] = f"no event for {timeout} s"
            return record
        event = json.loads(frame)
        kind = event.get("type")
        if kind == "sources":
            record["sources"] = event.get("sources") or []
            record["sources_ms"] = elapsed()
        elif kind == "evidence":
            record["evidence"] = {"text": event.get("text", ""), "source": event.get("source")}
            record["evidence_ms"] = elapsed()
        elif kind == "token":
            record.setdefault("first_token_ms", elapsed())
            record["text"] += event.get("text", "")
        elif kind == "error":
            record["error"] = event.get("message") or "error"
            return record
        elif kind == "done":
            record["done"] = event
            record["done_ms"] = elapsed()
            return record


async def converse(site, questions: Sequence[str], params: dict, socket_path: str) -> list[dict]:
    """Ask ``questions`` one after another in one conversation, over one socket."""
    from websockets.asyncio.client import connect

    records = []
    async with connect(f"ws://{site.host}{socket_path}", additional_headers=site.auth, max_size=2**22) as socket:
        for question in questions:
            record = await ask(socket, question, params)
            records.append(record)
            if record["error"] and record["error"].startswith("no event"):
                break  # the socket is in an unknown state
    return records


def run(options, prepared: dict) -> dict:
    import httpx
    from django.contrib.auth.models import User

    from accounts.services import create_api_token
    from bench.ingestion import _upload, _wait_ready
    from bench.streaming import _Site

    user = User.objects.create_user(USERNAME)
    token = create_api_token(user, name="bench")
    files = [golden.render(document) for document in golden.DOCUMENTS]
    conversations = plan(options.quick)
    params = ask_params()
    port = free_port()
    env = dict(os.environ)
    daphne = worker = None
    records: list[tuple[Question, str, dict]] = []
    result: dict = {"golden_set": golden.sizes(), "params_sent": params, "quick": bool(options.quick)}
    try:
        daphne = start_process(
            site_command(port),
            env=env,
            log_path=LOGS_DIR / "answers-daphne.log",
        )
        worker = start_process(
            [sys.executable, "manage.py", "qcluster"], env=env, log_path=LOGS_DIR / "answers-qcluster.log"
        )
        wait_for_port(port, timeout=60, process=daphne)
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=60) as client:
            began = time.perf_counter()
            ids = _upload(client, [(name, data) for name, data in files])
            _wait_ready(ids, timeout=900)
            result["ingest_seconds"] = round(time.perf_counter() - began, 1)
        stop_process(worker)
        worker = None
        document_ids = {document.key: str(id_) for document, id_ in zip(golden.DOCUMENTS, ids, strict=True)}
        result["documents"] = _documents(document_ids, files)
        say(f"answers: {len(ids)} golden documents ingested in {result['ingest_seconds']} s")

        with httpx.Client(timeout=60) as http:
            site = _Site(f"127.0.0.1:{port}", token, http)
            warm = asyncio.run(converse(site, [WARM_UP_QUESTION], params, site.new_conversation()))
            if warm[0]["error"]:
                raise RuntimeError(f"the warm-up question failed: {warm[0]['error']}")
            for _label, turns in progress(conversations, desc="answers: conversations", unit="conversation"):
                path = site.new_conversation()
                answered = asyncio.run(converse(site, [question.text for question, _ in turns], params, path))
                for (question, role), record in zip(turns, answered, strict=False):
                    records.append((question, role, record))
    finally:
        stop_process(worker)
        stop_process(daphne)

    scores = [score_answer(question, record, document_ids, role=role) for question, role, record in records]
    result["summary"] = summarize(scores)
    result["answers"] = scores
    live_sources = {question.id: record.get("sources") for question, _, record in records if record.get("sources")}
    say("answers: scoring the grounding check on the planted sentences")
    result["grounding_direct"] = score_grounding(golden.planted_sentences(), _sources_lookup(user, live_sources))
    result["model"] = _model_name(records)
    result["settings"] = _settings(user)
    # Settings this run was given in the environment among those a comparison varies: the
    # report shows such runs beside the default one.
    result["variant"] = {name: os.environ[name] for name in VARIANT_SETTINGS if name in os.environ}
    return result


def _documents(document_ids: dict[str, str], files: list[tuple[str, bytes]]) -> list[dict]:
    from documents.models import Chunk, Document

    out = []
    for (key, public_id), (name, data) in zip(document_ids.items(), files, strict=True):
        document = Document.objects.get(public_id=public_id)
        out.append(
            {
                "key": key,
                "file": name,
                "type": document.mime_type,
                "bytes": len(data),
                "chunks": Chunk.objects.filter(document=document).count(),
            }
        )
    return out


def _sources_lookup(user, live: dict[str, list]):
    """``sources_for(question id)``: the sources the server sent for it, else a search now."""
    questions = golden.all_questions()

    def sources_for(question_id: str) -> list[dict]:
        if question_id in live:
            return live[question_id]
        from documents import retrieval

        hits = retrieval.search(user, questions[question_id].text)
        return [hit.as_source(n) for n, hit in enumerate(hits, start=1)]

    return sources_for


def _model_name(records: list) -> str | None:
    for _, _, record in records:
        model = ((record.get("done") or {}).get("stats") or {}).get("model")
        if model:
            return model
    return None


def _settings(user) -> dict:
    """The settings an answer depends on, and the sampling the server saved with the answers."""
    from django.conf import settings

    from chat.models import Message

    chosen = {}
    for name in sorted(dir(settings)):
        if name.startswith(_SETTING_PREFIXES) and not _SECRET_SETTING.search(name):
            value = getattr(settings, name)
            if value is None or isinstance(value, bool | int | float | str):
                chosen[name] = value
    chosen["LLM_BASE_URL set"] = bool(getattr(settings, "LLM_BASE_URL", ""))
    saved = (
        Message.objects.filter(conversation__user=user, role="assistant")
        .exclude(params={})
        .order_by("-pk")
        .values_list("params", flat=True)
        .first()
    )
    chosen["answer params (as saved)"] = saved
    return chosen
