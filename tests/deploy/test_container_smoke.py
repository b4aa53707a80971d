"""The production shape, run for real: the image built from the Dockerfile (``make image``)
in a container per role on one podman network, configured by the Kubernetes manifests
(tests/deploy/pods.py): a PostgreSQL with pgvector, the ``migrate`` Job, two ``web`` pods,
a ``worker`` and the ``llm`` server, each with its init containers, as user 10001 on a
read-only root file system with every capability dropped and secrets as files.

Through both web containers: /readyz is green; the first admin is created the way
docs/deploy.md says and signs in; a PDF uploaded through web 1 is ingested by the worker and
an ``ask`` over the websocket through web 2 is answered by the llm container with a source from
that PDF; a worker killed (SIGKILL) mid-ingestion and started again leaves one chunk set; the
metrics port serves what an operator watches while the site's port does not.

Skipped, with the reason, when podman or the image is missing (``make test`` installs podman
and builds the image first).
"""

from __future__ import annotations

import asyncio
import io
import re
import secrets
import shutil

import httpx
import pytest

from tests.deploy.pods import Manifests, Stack, container_port, pod_spec, podman
from tests.live import (
    ask,
    document_of,
    free_port,
    long_document,
    upload,
    wait_until_partly_embedded,
    wait_until_settled,
)

IMAGE = "localhost/kb:dev"
POSTGRES_IMAGE = "localhost/kb-standin/postgres:17-pgvector"

pytestmark = [pytest.mark.slow]


def _missing() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (make test installs it with apt where it can)"
    for image in (IMAGE, POSTGRES_IMAGE):
        if podman("image", "exists", image, check=False).returncode != 0:
            return f"the image {image} is not built (make image)"
    return None


def _pdf(lines: list[str]) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    pdf.setTitle("Greenhouse handbook")
    y = 800
    for line in lines:
        pdf.drawString(72, y, line)
        y -= 18
    pdf.save()
    return buffer.getvalue()


HANDBOOK = _pdf(
    [
        "Greenhouse handbook",
        "",
        "Watering",
        "Water the tomato seedlings every morning with exactly 300 millilitres each.",
        "The greenhouse sprinkler code is TOMATO-4471.",
        "",
        "Heating",
        "Keep the greenhouse above twelve degrees Celsius at night in spring.",
    ]
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    reason = _missing()
    if reason:
        print(f"\ncontainer smoke test skipped: {reason}")
        pytest.skip(reason)
    manifests = Manifests()
    ports = {"web-1": free_port(), "web-2": free_port()}
    origins = ",".join(f"http://127.0.0.1:{port}" for port in ports.values())
    password = secrets.token_hex(16)
    stack = Stack(
        manifests=manifests,
        image=IMAGE,
        postgres_image=POSTGRES_IMAGE,
        workdir=tmp_path_factory.mktemp("containers"),
        secrets={
            "secret-key": secrets.token_urlsafe(48),
            "postgres-password": password,
            "database-url": f"postgres://kb:{password}@postgres:5432/kb",
            "llm-api-key": secrets.token_hex(16),
        },
        # Plain HTTP on loopback instead of the public host name behind the ALB.
        config={
            "kb-config": {
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "CSRF_TRUSTED_ORIGINS": origins,
                "TRUST_PROXY_HEADERS": "false",
                "HTTPS": "false",
                "HSTS_SECONDS": "0",
            }
        },
    )
    try:
        postgres = manifests.workload("postgres")
        stack.start(postgres, "kb-smoke-postgres", alias="postgres")
        stack.wait_started("kb-smoke-postgres")

        migrate = manifests.workload("migrate")
        (migrate_container,) = pod_spec(migrate)["containers"]
        stack.run_to_completion(migrate, migrate_container, "kb-smoke-migrate")

        llm = manifests.workload("llm")
        stack.run_init_containers(llm)
        stack.start(llm, "kb-smoke-llm", alias="llm")

        worker = manifests.workload("worker")
        stack.run_init_containers(worker)
        # Small encode calls, so that the long document below shows progress between them.
        stack.start(worker, "kb-smoke-worker", extra_env={"EMBEDDING_BATCH_SIZE": "8"})

        web = manifests.workload("web")
        stack.run_init_containers(web)
        site_port = container_port(pod_spec(web)["containers"][0], "http")
        for name, port in ports.items():
            stack.start(web, f"kb-smoke-{name}", publish={site_port: port})
        for name in ("kb-smoke-llm", "kb-smoke-web-1", "kb-smoke-web-2"):
            stack.wait_started(name)
        stack.urls.update({name: f"http://127.0.0.1:{port}" for name, port in ports.items()})
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def admin(stack):
    """The first admin, created as docs/deploy.md says (ensure_admin in a web container),
    with the generated password it prints once; and an API token for it."""
    out = podman("exec", "kb-smoke-web-1", "python", "manage.py", "ensure_admin").stdout
    match = re.search(r"as '(\w+)' with password: (\S+)", out)
    assert match, out
    token = podman("exec", "kb-smoke-web-1", "python", "manage.py", "create_api_token", match[1]).stdout.strip()
    return {"username": match[1], "password": match[2], "token": token}


def _psql(sql: str) -> str:
    return podman("exec", "kb-smoke-postgres", "psql", "-U", "kb", "-d", "kb", "-At", "-c", sql).stdout.strip()


def test_every_role_runs_as_the_manifests_say_and_both_web_containers_are_ready(stack):
    for name in ("web-1", "web-2"):
        response = httpx.get(f"{stack.urls[name]}/readyz", timeout=10)
        assert response.status_code == 200, response.text
    for name in ("kb-smoke-postgres", "kb-smoke-llm", "kb-smoke-worker", "kb-smoke-web-1", "kb-smoke-web-2"):
        assert stack.running(name), stack.logs(name)
    # As the manifests say: non-root, read-only root file system.
    for name in ("kb-smoke-web-1", "kb-smoke-worker", "kb-smoke-llm"):
        assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
        assert podman("exec", name, "touch", "/app/x", check=False).returncode != 0
    # The worker's own health check (its liveness probe) passes.
    worker = pod_spec(stack.manifests.workload("worker"))["containers"][0]
    assert stack.probe("kb-smoke-worker", worker, "livenessProbe")
    # pgvector as the migrations installed it.
    version = _psql("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    assert tuple(int(part) for part in version.split(".")[:2]) >= (0, 5), version
    # The llm server converted the bundled model into its writable models volume.
    assert re.search(r"entrypoint: serving /models/\S+\.gguf", stack.logs("kb-smoke-llm", tail=None))


def test_the_first_admin_signs_in_through_one_web_container_and_is_known_to_the_other(stack, admin):
    with httpx.Client(base_url=stack.urls["web-1"], timeout=30) as browser:
        page = browser.get("/accounts/login/")
        assert page.status_code == 200
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
        signed_in = browser.post(
            "/accounts/login/",
            data={"username": admin["username"], "password": admin["password"], "csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{stack.urls['web-1']}/accounts/login/"},
        )
        assert signed_in.status_code == 302, signed_in.text[:500]
        session = browser.cookies.get("sessionid")
    assert session
    # Sessions live in Postgres: the other web container knows the admin.
    with httpx.Client(base_url=stack.urls["web-2"], cookies={"sessionid": session}, timeout=30) as other:
        assert other.get("/admin/").status_code == 200


def test_a_pdf_uploaded_through_web_1_is_answered_from_through_web_2_by_the_llm_container(stack, admin):
    headers = {"Authorization": f"Bearer {admin['token']}"}
    with (
        httpx.Client(base_url=stack.urls["web-1"], headers=headers, timeout=30) as web_1,
        httpx.Client(base_url=stack.urls["web-2"], headers=headers, timeout=30) as web_2,
    ):
        doc_id = upload(web_1, "handbook.pdf", HANDBOOK, "application/pdf")
        ready = wait_until_settled(
            web_2,
            doc_id,
            timeout=180,
            message=f"the worker container to ingest the PDF\n{stack.logs('kb-smoke-worker')}",
        )
        assert ready["status"] == "ready", ready["error"]
        conversation = web_2.post("/api/v1/conversations/").json()["id"]
    llm_requests_before = stack.logs("kb-smoke-llm", tail=None).count("/v1/chat/completions")

    events = asyncio.run(ask(stack.urls["web-2"], conversation, admin["token"], "What is the sprinkler code?"))
    kinds = [event["type"] for event in events]
    assert "error" not in kinds, events
    assert kinds[-1] == "done"
    sources = next(event for event in events if event["type"] == "sources")["sources"]
    assert sources[0]["document"] == doc_id
    assert "".join(event["text"] for event in events if event["type"] == "token").strip()
    # The answer came from the llm container, not from a model inside the web container.
    assert stack.logs("kb-smoke-llm", tail=None).count("/v1/chat/completions") > llm_requests_before

    # What an operator scrapes: the metrics port of the web and worker containers (never the
    # site's port, which the ingress routes to).
    assert httpx.get(f"{stack.urls['web-2']}/metrics", timeout=10).status_code == 404
    # The port the manifests declare for scraping, on both roles.
    ports = {int(stack.manifests.config_map("kb-config")["METRICS_PORT"])}
    for role in ("web", "worker"):
        workload = stack.manifests.workload(role)
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        container = pod_spec(workload)["containers"][0]
        ports |= {container_port(container, "metrics"), int(annotations["prometheus.io/port"])}
    (port,) = ports
    get_metrics = f"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/metrics').read().decode())"
    web_metrics = podman("exec", "kb-smoke-web-2", "python", "-c", get_metrics).stdout
    assert re.search(r"^kb_answer_ttft_seconds_count\S* [1-9]", web_metrics, re.M), web_metrics[:2000]
    worker_metrics = podman("exec", "kb-smoke-worker", "python", "-c", get_metrics).stdout
    assert re.search(r'^kb_documents\{status="ready"\} [1-9]', worker_metrics, re.M), worker_metrics[:2000]


def test_a_worker_container_killed_mid_ingestion_and_started_again_leaves_one_chunk_set(stack, admin):
    headers = {"Authorization": f"Bearer {admin['token']}"}
    with httpx.Client(base_url=stack.urls["web-1"], headers=headers, timeout=30) as api:
        doc_id = upload(api, "notes.md", long_document(400))
        wait_until_partly_embedded(
            api, doc_id, timeout=180, message=f"ingestion to start\n{stack.logs('kb-smoke-worker')}"
        )
        podman("kill", "--signal", "KILL", "kb-smoke-worker")
        killed_at = document_of(api, doc_id)
        assert killed_at["status"] == "processing"
        assert killed_at["progress_done"] < killed_at["progress_total"]

        podman("start", "kb-smoke-worker")
        done = wait_until_settled(
            api,
            doc_id,
            timeout=300,
            message=f"the restarted worker to finish the document\n{stack.logs('kb-smoke-worker')}",
        )
    assert done["status"] == "ready", done["error"]
    count, distinct, top = _psql(
        "SELECT count(*), count(DISTINCT c.ordinal), max(c.ordinal) FROM documents_chunk c "
        f"JOIN documents_document d ON d.id = c.document_id WHERE d.public_id = '{doc_id}'",
    ).split("|")
    assert int(count) == int(distinct) == int(top) + 1 == done["chunk_count"] == done["progress_total"]
