"""A small Python stand-in for ``kubectl kustomize``, enough for the kustomizations in deploy/.

The test suite validates every object exactly as ``kubectl apply -k`` would send it, and no
kustomize binary can be assumed in CI, so this renders the subset of kustomize that the
project uses and refuses everything else (``UnsupportedKustomization``), so that a new
feature in a kustomization cannot be silently ignored:

- ``resources``: YAML files (several documents each) and directories holding a
  ``kustomization.yaml`` (an overlay's base), rendered recursively;
- ``namespace``: set on every namespaced object;
- ``labels`` with ``pairs`` only (no ``includeSelectors``/``includeTemplates``): added to
  ``metadata.labels`` of every object;
- ``images``: ``name`` with ``newName``/``newTag``/``digest``, applied to ``containers`` and
  ``initContainers`` of pods, pod templates, job templates;
- ``patches`` by ``path`` holding a strategic-merge patch made of maps only (nested maps
  are merged, scalars replaced) or ``$patch: delete`` to remove the object.

Objects keep kustomize's rules for identity: two objects with the same kind, namespace and
name are an error.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "labels", "resources", "images", "patches"}

# Kinds without a namespace (the ones a kustomization here may contain).
CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "IngressClass",
    "PersistentVolume",
    "PriorityClass",
}


class UnsupportedKustomization(ValueError):
    """The kustomization uses something this renderer does not implement, or is invalid."""


def load_documents(path: Path) -> list[dict[str, Any]]:
    """All non-empty YAML documents of a file."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def object_id(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return obj.get("kind", ""), meta.get("namespace", ""), meta.get("name", "")


def render_kustomization(directory: Path) -> list[dict[str, Any]]:
    """Render ``directory/kustomization.yaml`` into the list of objects it produces."""
    directory = Path(directory)
    kustomization_file = directory / "kustomization.yaml"
    if not kustomization_file.is_file():
        raise UnsupportedKustomization(f"{directory} has no kustomization.yaml")
    (config,) = load_documents(kustomization_file)
    unknown = set(config) - KUSTOMIZATION_KEYS
    if unknown:
        raise UnsupportedKustomization(f"{kustomization_file}: unsupported fields {sorted(unknown)}")

    objects: list[dict[str, Any]] = []
    for entry in config.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            objects.extend(render_kustomization(target))
        elif target.is_file():
            objects.extend(copy.deepcopy(load_documents(target)))
        else:
            raise UnsupportedKustomization(f"{kustomization_file}: resource {entry} does not exist")

    for patch in config.get("patches", []):
        objects = apply_patch(objects, directory, patch)
    if "namespace" in config:
        set_namespace(objects, config["namespace"])
    for label_set in config.get("labels", []):
        add_labels(objects, label_set)
    for image in config.get("images", []):
        set_image(objects, image)

    seen: set[tuple[str, str, str]] = set()
    for obj in objects:
        key = object_id(obj)
        if key in seen:
            raise UnsupportedKustomization(f"{kustomization_file}: duplicate object {key}")
        seen.add(key)
    return objects


def set_namespace(objects: list[dict[str, Any]], namespace: str) -> None:
    for obj in objects:
        if obj.get("kind") not in CLUSTER_SCOPED_KINDS:
            obj.setdefault("metadata", {})["namespace"] = namespace


def add_labels(objects: list[dict[str, Any]], label_set: dict[str, Any]) -> None:
    if set(label_set) != {"pairs"}:
        raise UnsupportedKustomization(f"labels: only 'pairs' is supported, got {sorted(label_set)}")
    for obj in objects:
        labels = obj.setdefault("metadata", {}).setdefault("labels", {})
        labels.update(label_set["pairs"])


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod specs inside a workload object (none for other kinds)."""
    spec = obj.get("spec") or {}
    kind = obj.get("kind")
    if kind == "Pod":
        return [spec]
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        return [spec["template"]["spec"]]
    if kind == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    return []


def containers_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container and init container of a workload object."""
    found: list[dict[str, Any]] = []
    for pod in pod_specs(obj):
        found.extend(pod.get("initContainers", []))
        found.extend(pod.get("containers", []))
    return found


def split_image(image: str) -> str:
    """The image name without its tag or digest (a registry port is not a tag)."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def set_image(objects: list[dict[str, Any]], image: dict[str, Any]) -> None:
    unknown = set(image) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise UnsupportedKustomization(f"images: unsupported fields {sorted(unknown)}")
    for obj in objects:
        for container in containers_of(obj):
            current = container.get("image", "")
            if split_image(current) != image["name"]:
                continue
            name = image.get("newName", image["name"])
            if "digest" in image:
                container["image"] = f"{name}@{image['digest']}"
            elif "newTag" in image:
                container["image"] = f"{name}:{image['newTag']}"
            else:
                container["image"] = name + current[len(split_image(current)) :]


def apply_patch(objects: list[dict[str, Any]], directory: Path, patch: dict[str, Any]) -> list[dict[str, Any]]:
    if set(patch) != {"path"}:
        raise UnsupportedKustomization(f"patches: only 'path' is supported, got {sorted(patch)}")
    (body,) = load_documents(directory / patch["path"])
    key = object_id(body)
    matches = [obj for obj in objects if object_id(obj)[0] == key[0] and object_id(obj)[2] == key[2]]
    if key[1]:
        matches = [obj for obj in matches if object_id(obj)[1] in {key[1], ""}]
    if len(matches) != 1:
        raise UnsupportedKustomization(f"patch {patch['path']}: expected one target {key}, found {len(matches)}")
    target = matches[0]
    if body.get("$patch") == "delete":
        return [obj for obj in objects if obj is not target]
    merge_maps(target, {k: v for k, v in body.items() if k not in {"apiVersion", "kind"}}, patch["path"])
    return objects


def merge_maps(target: dict[str, Any], patch: dict[str, Any], where: str) -> None:
    for key, value in patch.items():
        if isinstance(value, list) or key.startswith("$"):
            # Strategic merge of lists (merge keys, directives) is not implemented here.
            raise UnsupportedKustomization(f"patch {where}: lists and directives are not supported ({key})")
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_maps(target[key], value, where)
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(value)
