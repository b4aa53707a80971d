"""Production settings (issue 11, finding 11): `manage.py check --deploy` is clean with the
Kubernetes settings; HTTPS behaviour follows the HTTPS and TRUST_PROXY_HEADERS switches (off in
the tests and `make run`, on in deploy/k8s); probes answer over plain HTTP; every page carries
a strict Content-Security-Policy and nothing inline that it would block."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from django.test import Client, override_settings
from django.urls import reverse

from accounts.services import create_api_token
from tests.chat.factories import make_cited_document, make_conversation, make_passage
from tests.conftest import client_for

ROOT = Path(__file__).resolve().parent.parent
# Everything the switches under test set; removed from the inherited environment first.
SWITCHES = {"HTTPS", "TRUST_PROXY_HEADERS", "TRUSTED_PROXY_COUNT", "HSTS_SECONDS", "HSTS_INCLUDE_SUBDOMAINS"}
SWITCHES |= {"HSTS_PRELOAD", "CSRF_TRUSTED_ORIGINS", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "SECRET_KEY_FILE"}
EXPECTED_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}


def kubernetes_settings() -> dict[str, str]:
    """The web pods' settings: the ConfigMap in deploy/k8s."""
    configmap = yaml.safe_load((ROOT / "deploy" / "k8s" / "configmap.yaml").read_text())
    return {name: str(value) for name, value in configmap["data"].items()}


def run_django(args: list[str], **env_vars: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    # A dummy URL: neither importing the settings nor `check` may need a database.
    env.update({"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "LOG_LEVEL": "WARNING", **env_vars})
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def settings_under(**env_vars: str) -> dict:
    script = (
        "import json, os\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'kb_site.settings'\n"
        "from django.conf import settings\n"
        "names = ['SECURE_SSL_REDIRECT', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS',\n"
        "         'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_HSTS_PRELOAD', 'CSRF_TRUSTED_ORIGINS']\n"
        "values = {name: getattr(settings, name) for name in names}\n"
        "values['SECURE_PROXY_SSL_HEADER'] = getattr(settings, 'SECURE_PROXY_SSL_HEADER', None)\n"
        "print(json.dumps(values))\n"
    )
    result = run_django(["-c", script], **env_vars)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


CHECK_DEPLOY = ["manage.py", "check", "--deploy", "--fail-level", "WARNING"]
PRODUCTION_SECRET = {"SECRET_KEY": secrets.token_urlsafe(50)}
TEST_LIKE = {"DEBUG": "false", "SECRET_KEY": "test-only-not-secret", "ALLOWED_HOSTS": "testserver"}


@pytest.mark.slow
def test_check_deploy_is_clean_with_the_kubernetes_settings():
    production = kubernetes_settings()
    assert production["DEBUG"] == "false" and production["HTTPS"] == "true"
    result = run_django(CHECK_DEPLOY, **production, **PRODUCTION_SECRET)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stderr, result.stderr


@pytest.mark.slow
def test_check_deploy_asks_for_https_when_it_is_off():
    result = run_django(CHECK_DEPLOY, **TEST_LIKE)
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stderr, f"{check} not reported:\n{result.stderr}"


@pytest.mark.slow
def test_https_and_proxy_trust_are_switched_by_the_environment():
    off = settings_under(**TEST_LIKE)
    assert off == {
        "SECURE_SSL_REDIRECT": False,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
        "CSRF_TRUSTED_ORIGINS": [],
        "SECURE_PROXY_SSL_HEADER": None,
    }
    on = settings_under(**kubernetes_settings(), **PRODUCTION_SECRET)
    assert on["SECURE_SSL_REDIRECT"] and on["SESSION_COOKIE_SECURE"] and on["CSRF_COOKIE_SECURE"]
    assert on["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    assert on["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert on["CSRF_TRUSTED_ORIGINS"] == ["https://kb.example.com"]
    assert not on["SECURE_HSTS_INCLUDE_SUBDOMAINS"] and not on["SECURE_HSTS_PRELOAD"]
    opted_in = settings_under(
        **TEST_LIKE, HTTPS="true", HSTS_SECONDS="600", HSTS_INCLUDE_SUBDOMAINS="true", HSTS_PRELOAD="true"
    )
    assert opted_in["SECURE_HSTS_SECONDS"] == 600
    assert opted_in["SECURE_HSTS_INCLUDE_SUBDOMAINS"] and opted_in["SECURE_HSTS_PRELOAD"]


@pytest.mark.slow
def test_hsts_preload_without_subdomains_is_refused_at_start_up():
    result = run_django(["-c", "import kb_site.settings"], **TEST_LIKE, HTTPS="true", HSTS_PRELOAD="true")
    assert result.returncode != 0
    assert "HSTS_PRELOAD needs HSTS_INCLUDE_SUBDOMAINS" in result.stderr


HTTPS_BEHIND_PROXY = {
    "SECURE_SSL_REDIRECT": True,
    "SESSION_COOKIE_SECURE": True,
    "CSRF_COOKIE_SECURE": True,
    "SECURE_HSTS_SECONDS": 3600,
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
}


@pytest.mark.django_db
@override_settings(**HTTPS_BEHIND_PROXY)
def test_with_https_on_plain_http_is_redirected_but_the_probes_answer(alice):
    client = Client()
    response = client.get(reverse("accounts:login"))
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/accounts/login/"
    # The kubelet and the load balancer probe over plain HTTP, by pod IP.
    assert client.get("/healthz", HTTP_HOST="10.0.0.12:8000").status_code == 200
    assert client.get("/readyz", HTTP_HOST="10.0.0.12:8000").status_code == 200


@pytest.mark.django_db
@override_settings(**HTTPS_BEHIND_PROXY)
def test_with_https_on_pages_through_the_proxy_send_hsts_and_secure_cookies(alice):
    from tests.conftest import PASSWORD

    client = Client(HTTP_X_FORWARDED_PROTO="https")
    page = client.get(reverse("accounts:login"))
    assert page.status_code == 200
    assert page["Strict-Transport-Security"] == "max-age=3600"
    assert page.cookies["csrftoken"]["secure"]
    signed_in = client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    assert signed_in.status_code == 302
    assert signed_in.cookies["sessionid"]["secure"]
    # A client's own X-Forwarded-Proto is not believed unless the proxy is trusted.
    with override_settings(SECURE_PROXY_SSL_HEADER=None):
        assert Client(HTTP_X_FORWARDED_PROTO="https").get(reverse("accounts:login")).status_code == 301


def policy_of(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {directive[0]: directive[1:] for directive in directives}


class InlineCode(HTMLParser):
    """Collects what a strict policy would block: inline scripts, event-handler and style
    attributes, <style> elements."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script" and "src" not in attributes and attributes.get("type") != "application/json":
            self.found.append(f"inline <script> at line {self.getpos()[0]}")
        if tag == "style":
            self.found.append(f"<style> at line {self.getpos()[0]}")
        for name in attributes:
            if name.startswith("on") or name == "style":
                self.found.append(f"{name}= on <{tag}> at line {self.getpos()[0]}")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


@pytest.mark.django_db
def test_every_page_sends_the_strict_content_security_policy(alice, admin_user):
    pages = [
        (Client(), reverse("accounts:login")),
        (Client(), reverse("admin:login")),
        (client_for(alice), reverse("chat:home")),
        (client_for(alice), reverse("documents:list")),
        (client_for(admin_user), reverse("admin:index")),
    ]
    for client, url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert policy_of(response) == EXPECTED_POLICY, url
        assert "unsafe" not in response["Content-Security-Policy"]


@pytest.mark.django_db
@override_settings(SIGNUP_ENABLED=True)
def test_the_sites_pages_hold_no_inline_script_or_style(alice):
    passage = make_passage("Zorblax 3000 manual", "Descaling", "Descale it every 40 days.", 0.9)
    document = make_cited_document(alice, passage)
    conversation = make_conversation(alice, exchanges=[("How often?", "Every 40 days [1].")], sources=[passage])
    create_api_token(alice, name="laptop")
    anonymous, signed_in = Client(), client_for(alice)
    pages = [
        (anonymous, reverse("accounts:login")),
        (anonymous, reverse("accounts:signup")),
        (signed_in, reverse("chat:home")),
        (signed_in, reverse("chat:conversation", args=[conversation.public_id])),
        (signed_in, reverse("documents:list")),
        (signed_in, reverse("documents:upload")),
        (signed_in, reverse("documents:detail", args=[document.public_id])),
        (signed_in, reverse("accounts:tokens")),
        (signed_in, reverse("accounts:password_change")),
    ]
    for client, url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert inline_code(response.content.decode()) == [], url
