"""The seed's ingestion stack, timed: ``python bench/seed_stack.py IN.json OUT.json``.

Runs in ``.venv-bench`` (requirements-bench.txt; ``make bench`` builds it), started by
``bench/ingestion.py``: LangChain's ``RecursiveCharacterTextSplitter`` (chunk_size 1000,
chunk_overlap 100) + ``HuggingFaceEmbeddings`` (the same local MiniLM folder, CPU) +
``FAISS.from_documents``, as the Streamlit demo kb replaces did it. IN holds
``{"model_path": ..., "texts": [...]}`` (one text per document); OUT receives the timings.
Imports and the model load are timed apart from the ingestion itself (split + embed + index),
as kb's pipeline is measured with a warm worker.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    source, target = argv
    with open(source, encoding="utf-8") as handle:
        job = json.load(handle)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    tick = time.perf_counter()
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    embedder = HuggingFaceEmbeddings(model_name=job["model_path"], model_kwargs={"device": "cpu"})
    embedder.embed_query("warm up")
    load_seconds = time.perf_counter() - tick

    tick = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=100)
    chunks = splitter.split_documents([Document(page_content=text) for text in job["texts"]])
    index = FAISS.from_documents(chunks, embedder)
    seconds = time.perf_counter() - tick
    import resource

    with open(target, "w", encoding="utf-8") as out:
        json.dump(
            {
                "documents": len(job["texts"]),
                "chunks": len(chunks),
                "vectors": index.index.ntotal,
                "seconds": round(seconds, 2),
                "chunks_per_second": round(len(chunks) / seconds, 2),
                "load_seconds": round(load_seconds, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            },
            out,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
