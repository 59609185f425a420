"""LIST with `limit` and `continue`, the way the real API server pages a list, and bulk loading.

The real server (k8s.io/apiserver storage/etcd3 store.GetList) walks etcd's key space
(`<prefix>/<namespace>/<name>`, byte order) and, when `limit` is set, returns at most that
many items plus `metadata.continue`: an opaque token (base64url of a small JSON naming the
list's resourceVersion and the key to start after; storage.EncodeContinue) and, when no
label or field selector filters the list, `metadata.remainingItemCount`.  A token that does
not decode is a 400 BadRequest; a token whose resourceVersion etcd has compacted away is a
410 Gone with reason `Expired`.  Here `ApiServer.compact()` (see :func:`compact`) plays the
compaction: every token issued before it expires.

For the fleet benchmarks the store must hold tens of thousands of objects: the sorted key
index of a resource is cached per store revision, a page copies only its own items, and
:func:`bulk_put` stores prepared objects without the per-object deep copies of `Store.put`.
"""
from __future__ import annotations

import base64
import json
import threading
import uuid
from typing import Callable, Iterable

from .resources import Resource, for_object
from .status import ApiError, bad_request
from .store import Store, now_rfc3339

Matcher = Callable[[dict], bool]

_EXPIRED_MESSAGE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - objects "
    "that were created, modified, or deleted between the time the first chunk was returned and now may show "
    "up in the list.")

_index_lock = threading.Lock()
# id(store) -> {(group, plural): (cache key, [(etcd key, store key), ...])}
_indexes: dict[int, dict[tuple[str, str], tuple[tuple[str, int], list]]] = {}
# id(store) -> the revision below which continue tokens have expired
_compacted: dict[int, int] = {}


def _etcd_key(ns: str, name: str) -> str:
    return f"{ns}/{name}" if ns else name


def _sorted_keys(store: Store, resource: Resource) -> list:
    """[(etcd key, store key)] of one resource in etcd order; cached until the store changes.
    Writes bump the revision and deletes change the count, so (revision, count) is a sound key."""
    objs = store._objects  # noqa: SLF001 - same package: the store's own index
    cache_key = (store.resource_version(), len(objs))
    with _index_lock:
        per_store = _indexes.setdefault(id(store), {})
        hit = per_store.get((resource.group, resource.plural))
        if hit is not None and hit[0] == cache_key:
            return hit[1]
    keys = sorted((_etcd_key(k[2], k[3]), k) for k in list(objs)
                  if k[0] == resource.group and k[1] == resource.plural)
    with _index_lock:
        per_store[(resource.group, resource.plural)] = (cache_key, keys)
    return keys


def encode_continue(rv: str, start_after: str) -> str:
    # storage.EncodeContinue: the key to continue from is the last key returned + "\x00".
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": int(rv), "start": start_after + "\x00"}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("v") != "meta.k8s.io/v1":
            raise ValueError("continue key is not valid: incorrect encoded start resourceVersion (version "
                             "meta.k8s.io/v1)")
        rv, start = int(data["rv"]), data["start"]
        if not isinstance(start, str) or not start.endswith("\x00"):
            raise ValueError("continue key is not valid: invalid start key")
    except (ValueError, TypeError, KeyError) as e:
        text = str(e) if str(e).startswith("continue key") else "continue key is not valid: %s" % e
        raise bad_request(text) from None
    return rv, start[:-1]


def compact(store: Store) -> None:
    """Expire every continue token issued so far (as an etcd compaction would)."""
    with _index_lock:
        _compacted[id(store)] = int(store.resource_version()) + 1


def list_page(store: Store, resource: Resource, namespace: str | None, match: Matcher,
              limit: int | None, token: str | None, filtered: bool) -> tuple[list[dict], dict]:
    """One page: (items as stored, list metadata).  `match` is the label/field selector."""
    start_after = None
    rv = store.resource_version()
    if token:
        token_rv, start_after = decode_continue(token)
        if token_rv < _compacted.get(id(store), 0):
            raise ApiError(410, "Expired", _EXPIRED_MESSAGE)
        rv = str(token_rv)
    keys = _sorted_keys(store, resource)
    lo = 0
    if start_after is not None:
        import bisect

        lo = bisect.bisect_right(keys, (start_after, (chr(0x10FFFF),)))
    prefix = f"{namespace}/" if namespace else ""
    objs = store._objects  # noqa: SLF001
    items: list[dict] = []
    more = False
    i, n = lo, len(keys)
    while i < n:
        ekey, skey = keys[i]
        if prefix and not ekey.startswith(prefix):
            if ekey > prefix:
                break
            i += 1
            continue
        obj = objs.get(skey)
        if obj is not None and match(obj):
            if limit and len(items) == limit:
                more = True  # like etcd's `more`: keys remain in range, matching or not
                break
            items.append(obj)
        i += 1
    meta: dict = {"resourceVersion": rv}
    if more and items:
        meta["continue"] = encode_continue(rv, _etcd_key(items[-1]["metadata"].get("namespace", "")
                                                         if resource.namespaced else "", items[-1]["metadata"]["name"]))
        if not filtered:
            meta["remainingItemCount"] = sum(1 for j in range(i, n) if not prefix or keys[j][0].startswith(prefix))
    return items, meta


def list_body(store: Store, resource: Resource, namespace: str | None, match: Matcher, query) -> bytes:
    """The JSON body of a (possibly paged) LIST, serialised compactly like the real server."""
    try:
        limit = int(query.get("limit") or 0)
    except ValueError:
        raise bad_request("invalid limit %r" % query.get("limit")) from None
    limit = max(limit, 0) or None
    filtered = bool(query.get("labelSelector") or query.get("fieldSelector"))
    items, meta = list_page(store, resource, namespace, match, limit, query.get("continue"), filtered)
    if not resource.custom:
        # Built-in lists leave kind/apiVersion out of their items; custom resource lists keep them.
        items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
    body = {"kind": resource.list_kind, "apiVersion": resource.api_version, "metadata": meta, "items": items}
    return json.dumps(body, separators=(",", ":")).encode()


def bulk_put(store: Store, objects: Iterable[dict]) -> int:
    """Store prepared objects as they are (no copies): fills uid, creationTimestamp,
    generation and resourceVersion where missing.  For large benchmark fleets."""
    count = 0
    now = now_rfc3339()
    with store.lock:
        for obj in objects:
            resource = for_object(obj)
            meta = obj.setdefault("metadata", {})
            if resource.namespaced:
                meta.setdefault("namespace", "default")
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now)
            meta.setdefault("generation", 1)
            meta["resourceVersion"] = store._next_revision()  # noqa: SLF001
            store._objects[store.key(resource, meta.get("namespace", ""), meta["name"])] = obj  # noqa: SLF001
            count += 1
    return count
