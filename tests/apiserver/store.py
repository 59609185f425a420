"""The in-memory object store: one global resourceVersion counter, like etcd's revision."""
from __future__ import annotations

import copy
import datetime
import threading
import uuid
from typing import Callable

from .resources import Resource, for_object


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


Key = tuple[str, str, str, str]     # (group, plural, namespace or "", name)


class Store:
    """Thread-safe: the server's event loop thread and the test thread both use it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._objects: dict[Key, dict] = {}
        self._revision = 0

    @staticmethod
    def key(resource: Resource, namespace: str, name: str) -> Key:
        return (resource.group, resource.plural, namespace if resource.namespaced else "", name)

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def resource_version(self) -> str:
        with self._lock:
            return str(self._revision)

    def _next_revision(self) -> str:
        self._revision += 1
        return str(self._revision)

    def clear(self) -> None:
        with self._lock:
            self._objects.clear()

    # -- reads ---------------------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str, name: str) -> dict | None:
        with self._lock:
            obj = self._objects.get(self.key(resource, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def peek(self, resource: Resource, namespace: str, name: str) -> dict | None:
        """The stored object itself, not a copy, for a handler that only reads it (the pod
        exec handler: a deep copy of a launcher pod per exec was a third of the server's CPU
        under `list --live`).  put() stores a new object, so what a reader holds never
        changes under it; the reader must not change it either."""
        with self._lock:
            return self._objects.get(self.key(resource, namespace, name))

    def list(self, resource: Resource, namespace: str | None = None) -> list[dict]:
        """Objects sorted by namespace then name (the order etcd's key space gives)."""
        with self._lock:
            items = [copy.deepcopy(o) for (g, p, ns, _), o in sorted(self._objects.items())
                     if g == resource.group and p == resource.plural and (not namespace or ns == namespace)]
            return items

    def namespaces(self) -> set[str]:
        with self._lock:
            return {ns for (_, _, ns, _) in self._objects if ns}

    # -- writes --------------------------------------------------------------------------------

    def put(self, obj: dict) -> dict:
        """Create or overwrite, filling in the server-owned metadata.  Returns the stored copy."""
        resource = for_object(obj)
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            raise ValueError("object has no metadata.name")
        if resource.namespaced:
            meta.setdefault("namespace", "default")
        else:
            meta.pop("namespace", None)
        with self._lock:
            key = self.key(resource, meta.get("namespace", ""), meta["name"])
            old = self._objects.get(key)
            meta.setdefault("uid", old["metadata"]["uid"] if old else str(uuid.uuid4()))
            meta.setdefault("creationTimestamp",
                            old["metadata"]["creationTimestamp"] if old else now_rfc3339())
            meta.setdefault("generation", old["metadata"].get("generation", 1) if old else 1)
            meta["resourceVersion"] = self._next_revision()
            self._objects[key] = obj
            return copy.deepcopy(obj)

    def replace(self, resource: Resource, obj: dict, *, bump_generation: bool) -> dict:
        """Store an already validated update (used by PATCH/PUT)."""
        with self._lock:
            meta = obj["metadata"]
            key = self.key(resource, meta.get("namespace", ""), meta["name"])
            if bump_generation:
                meta["generation"] = int(meta.get("generation", 1)) + 1
            meta["resourceVersion"] = self._next_revision()
            self._objects[key] = copy.deepcopy(obj)
            return copy.deepcopy(obj)

    def mutate(self, resource: Resource, namespace: str, name: str, fn: Callable[[dict], object]) -> dict:
        """Apply `fn` to the stored object in place (a write by "someone else"); bumps resourceVersion."""
        with self._lock:
            key = self.key(resource, namespace, name)
            if key not in self._objects:
                raise KeyError(f"{resource.plural} {namespace}/{name} does not exist")
            obj = copy.deepcopy(self._objects[key])
            old_spec = copy.deepcopy(obj.get("spec"))
            result = fn(obj)
            if isinstance(result, dict):
                obj = result
            return self.replace(resource, obj, bump_generation=obj.get("spec") != old_spec)

    def delete(self, resource: Resource, namespace: str, name: str) -> dict | None:
        with self._lock:
            return self._objects.pop(self.key(resource, namespace, name), None)
