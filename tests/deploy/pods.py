"""Run the containers of deploy/k8s with podman, as the manifests define them.

The container smoke test (test_container_smoke.py) starts every role from the rendered
manifests rather than from a list of its own, so the image and the manifests cannot drift
apart unnoticed: a role's ``args``, its environment (``envFrom`` ConfigMaps and ``env``), its
secrets mounted as files, its scratch volumes, its user, read-only root file system, dropped
capabilities and its probes all come from the Deployment, StatefulSet or Job. What a single
machine cannot honour is named where it is replaced:

- a Service name (``postgres``, ``llm``) becomes a network alias on one podman network;
- an ``emptyDir`` becomes a tmpfs owned by the container's user (Kubernetes' ``fsGroup``),
  a PersistentVolumeClaim template a named volume;
- a Secret becomes a folder of files (mode 0444: podman has no ``fsGroup``);
- resource requests and limits are not applied (the sandbox has no cgroup controllers for them);
- ConfigMap values that name the public host, HTTPS and the proxy are overridden for
  plain HTTP on loopback (``LOCAL_CONFIG`` in the test).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.deploy.render import render_kustomization

ROOT = Path(__file__).resolve().parents[2]
PODMAN_FLAGS = ROOT / "deploy" / "podman" / "podman-flags.sh"


def podman_flags() -> list[str]:
    """The flags deploy/podman/podman-flags.sh computes (ulimits within the host's)."""
    out = subprocess.run(
        ["bash", "-c", f". {shlex.quote(str(PODMAN_FLAGS))} && printf '%s' \"$PODMAN_FLAGS\""],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def podman(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        command = " ".join(args[:3])
        raise RuntimeError(f"podman {command} ... failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


class Manifests:
    """The objects ``kubectl apply -k deploy/k8s`` would create."""

    def __init__(self, directory: Path = ROOT / "deploy" / "k8s"):
        self.objects = render_kustomization(directory)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.objects:
            if obj["kind"] == kind and obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"{kind}/{name} is not in the manifests")

    def workload(self, name: str) -> dict[str, Any]:
        """The pod spec of the Deployment, StatefulSet or Job called ``name``."""
        for obj in self.objects:
            if obj["kind"] in ("Deployment", "StatefulSet", "Job") and obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"no workload {name!r} in the manifests")

    def config_map(self, name: str) -> dict[str, str]:
        return dict(self.get("ConfigMap", name).get("data") or {})


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A port number, or the number of the container's port of that name."""
    if isinstance(port, int):
        return port
    (number,) = [item["containerPort"] for item in container.get("ports", []) if item.get("name") == port]
    return number


def _size(limit: str | None) -> str | None:
    """A Kubernetes quantity (512Mi, 2Gi) as a tmpfs size (512m, 2g)."""
    if not limit:
        return None
    for suffix, unit in (("Ki", "k"), ("Mi", "m"), ("Gi", "g")):
        if limit.endswith(suffix):
            return limit[: -len(suffix)] + unit
    return limit


@dataclass
class Stack:
    """One podman network and what runs on it; ``close()`` removes all of it."""

    manifests: Manifests
    image: str
    postgres_image: str
    workdir: Path
    secrets: dict[str, str]
    config: dict[str, dict[str, str]] = field(default_factory=dict)  # ConfigMap overrides
    prefix: str = "kb-smoke"
    containers: list[str] = field(default_factory=list)
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)  # container name -> its spec
    urls: dict[str, str] = field(default_factory=dict)  # published sites, filled by the caller
    volumes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=podman_flags)

    def __post_init__(self) -> None:
        self.network = f"{self.prefix}-net"
        # What an interrupted earlier run left behind (a killed pytest never reaches close()).
        stale = podman("ps", "--all", "--filter", f"name=^{self.prefix}-", "--format", "{{.Names}}").stdout.split()
        self.containers.extend(stale)
        self.volumes.extend(podman("volume", "ls", "--filter", f"name=^{self.prefix}-", "--quiet").stdout.split())
        self.close()
        self.containers.clear()
        self.volumes.clear()
        podman("network", "create", self.network)

    # -- translation ----------------------------------------------------------------------
    def run_args(
        self,
        workload: dict[str, Any],
        container: dict[str, Any],
        name: str,
        *,
        alias: str | None = None,
        publish: dict[int, int] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> list[str]:
        """``podman run`` arguments for one container of ``workload``'s pod."""
        spec = pod_spec(workload)
        security = {**(spec.get("securityContext") or {}), **(container.get("securityContext") or {})}
        user = security["runAsUser"]
        group = security.get("runAsGroup", user)
        args = [*self.flags, "--name", name, "--network", self.network, "--user", f"{user}:{group}"]
        if alias:
            args += ["--network-alias", alias]
        if security.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        for capability in (security.get("capabilities") or {}).get("drop", []):
            args += ["--cap-drop", capability]
        if security.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        for container_port, host_port in (publish or {}).items():
            args += ["--publish", f"127.0.0.1:{host_port}:{container_port}"]

        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            config_name = source["configMapRef"]["name"]
            env.update(self.manifests.config_map(config_name))
            env.update(self.config.get(config_name, {}))
        for item in container.get("env", []):
            if "value" not in item:
                raise ValueError(f"{name}: env {item['name']} uses valueFrom, which the smoke test cannot map")
            env[item["name"]] = str(item["value"])
        env.update(extra_env or {})
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]

        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        claims = {claim["metadata"]["name"] for claim in workload["spec"].get("volumeClaimTemplates", [])}
        for mount in container.get("volumeMounts", []):
            path, read_only = mount["mountPath"], mount.get("readOnly", False)
            if mount["name"] in claims:
                volume_name = f"{self.prefix}-{mount['name']}"
                if volume_name not in self.volumes:
                    self.volumes.append(volume_name)
                args += ["--volume", f"{volume_name}:{path}:U"]
                continue
            volume = volumes[mount["name"]]
            if "secret" in volume:
                folder = self._secret_folder(name, volume["secret"])
                args += ["--volume", f"{folder}:{path}:ro"]
            elif "emptyDir" in volume:
                options = ["rw" if not read_only else "ro", "mode=1777", "U"]
                size = _size((volume["emptyDir"] or {}).get("sizeLimit"))
                if volume["emptyDir"].get("medium") == "Memory" and path == "/dev/shm":
                    args += ["--shm-size", size or "64m"]
                    continue
                if size:
                    options.append(f"size={size}")
                args += ["--tmpfs", f"{path}:{','.join(options)}"]
            else:
                raise ValueError(f"{name}: volume {mount['name']} is of a kind the smoke test cannot map")
        return args

    def _secret_folder(self, container_name: str, secret: dict[str, Any]) -> Path:
        folder = self.workdir / "secrets" / container_name
        folder.mkdir(parents=True, exist_ok=True)
        items = secret.get("items") or [{"key": key, "path": key} for key in self.secrets]
        for item in items:
            target = folder / item["path"]
            target.write_text(self.secrets[item["key"]])
            target.chmod(0o444)
        return folder

    def image_of(self, container: dict[str, Any]) -> str:
        return self.postgres_image if container["image"].startswith("pgvector/") else self.image

    # -- lifecycle ------------------------------------------------------------------------
    def run_init_containers(self, workload: dict[str, Any], timeout: float = 600) -> None:
        """Run the pod's init containers in order, each to completion (exit 0)."""
        for container in pod_spec(workload).get("initContainers", []):
            name = f"{self.prefix}-{workload['metadata']['name']}-{container['name']}"
            self.run_to_completion(workload, container, name, timeout=timeout)

    def run_to_completion(
        self, workload: dict[str, Any], container: dict[str, Any], name: str, timeout: float = 600
    ) -> str:
        args = self.run_args(workload, container, name)
        result = podman(
            "run", "--rm", *args, self.image_of(container), *container.get("args", []), check=False, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"{name} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result.stdout + result.stderr

    def start(self, workload: dict[str, Any], name: str, **kwargs: Any) -> str:
        """Start the pod's (single) main container, detached; returns its name."""
        (container,) = pod_spec(workload)["containers"]
        args = self.run_args(workload, container, name, **kwargs)
        self.containers.append(name)
        self.specs[name] = container
        podman("run", "--detach", *args, self.image_of(container), *container.get("args", []))
        return name

    def probe(self, name: str, container: dict[str, Any], kind: str) -> bool:
        """Run the container's Kubernetes probe ``kind`` (``livenessProbe``...: exec, httpGet or
        tcpSocket) inside it, a named port resolved from the container's ports."""
        probe = container[kind]
        if "exec" in probe:
            command = probe["exec"]["command"]
        elif "httpGet" in probe:
            port = container_port(container, probe["httpGet"]["port"])
            url = f"http://127.0.0.1:{port}{probe['httpGet']['path']}"
            command = ["python", "-c", f"import urllib.request as u; u.urlopen({url!r}, timeout=5)"]
        elif "tcpSocket" in probe:
            port = container_port(container, probe["tcpSocket"]["port"])
            command = ["python", "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 3)"]
        else:
            raise ValueError(f"unknown probe {probe}")
        return podman("exec", name, *command, check=False, timeout=30).returncode == 0

    def wait_started(self, name: str, timeout: float = 300) -> None:
        """Wait until the started container's startup (or readiness) probe passes, failing
        early if the container exits."""
        container = self.specs[name]
        kind = next((kind for kind in ("startupProbe", "readinessProbe") if kind in container), None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running(name):
                raise RuntimeError(f"{name} stopped:\n{self.logs(name)}")
            if kind is None or self.probe(name, container, kind):
                return
            time.sleep(1)
        raise TimeoutError(f"{name} did not pass its probe in {timeout}s:\n{self.logs(name)}")

    def running(self, name: str) -> bool:
        result = podman("inspect", "--format", "{{.State.Running}}", name, check=False)
        return result.stdout.strip() == "true"

    def logs(self, name: str, tail: int | None = 60) -> str:
        """The container's output: its last ``tail`` lines, or all of it."""
        result = podman("logs", *(["--tail", str(tail)] if tail else []), name, check=False)
        return result.stdout + result.stderr

    def close(self) -> None:
        for name in reversed(self.containers):
            podman("rm", "--force", "--time", "5", name, check=False)
        for volume in self.volumes:
            podman("volume", "rm", "--force", volume, check=False)
        podman("network", "rm", "--force", self.network, check=False)
        shutil.rmtree(self.workdir / "secrets", ignore_errors=True)
