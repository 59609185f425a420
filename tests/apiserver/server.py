"""The test API server: aiohttp on 127.0.0.1 with TLS, in a background thread with its own loop.

One port serves discovery, REST objects, the KubeVirt `restart` subresource and pod exec over
WebSocket.  Everything a test needs to arrange or observe is a thread-safe method or attribute
of :class:`ApiServer` (see the README-style summary in ``apiserver/__init__.py``).
"""
from __future__ import annotations

import asyncio
import copy
import json
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import unquote

from aiohttp import web

from . import kubeconfig as kubeconfig_mod
from . import paging
from . import resources as res
from . import tables, tls
from .patch import PatchError, PatchFormatError, json_patch, merge_patch
from .rbac import Rule, User, default_users, forbidden_reason, token_for
from .selectors import parse_field_selector, parse_label_selector
from .status import (ApiError, already_exists, bad_request, conflict, forbidden, internal_error, invalid,
                     method_not_supported, not_found, path_not_found, unauthorized, unprocessable,
                     unsupported_media_type)
from .store import Store
from .virsh import ExecContext, ExecHandler, ExecResult, VirshConfig, run_command

V5_PROTOCOL = "v5.channel.k8s.io"
V4_PROTOCOL = "v4.channel.k8s.io"
STDOUT, STDERR, ERROR, CLOSE = 1, 2, 3, 255

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

RESTARTABLE_STRATEGIES = ("Always", "Manual", "RerunOnFailure")

# Per-request storage keys (typed keys where aiohttp has them, plain strings on older versions).
_USER_KEY = web.RequestKey("virtio_user", object) if hasattr(web, "RequestKey") else "virtio_user"
_INFO_KEY = web.RequestKey("virtio_info", object) if hasattr(web, "RequestKey") else "virtio_info"
_LOGGED_KEY = web.RequestKey("virtio_logged", object) if hasattr(web, "RequestKey") else "virtio_logged"


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: str                 # raw query string, e.g. "labelSelector=a%3Db&limit=500"
    user: str | None           # None when authentication failed
    status: int                # HTTP status (101 for an upgraded exec)
    time: float                # time.time() when the request arrived
    duration: float
    verb: str = ""             # Kubernetes verb used for authorization ("get", "list", "patch", ...)
    resource: str = ""         # "virtualmachines", "pods/exec", ... ("" for discovery)
    namespace: str = ""
    name: str = ""
    raw_path: str = ""         # as sent, percent-escapes kept (path is the decoded form)

    @property
    def is_discovery(self) -> bool:
        return self.verb == "discovery"

    @property
    def is_exec(self) -> bool:
        return self.resource == "pods/exec"


@dataclass(frozen=True)
class ExecRecord:
    namespace: str
    pod: str
    container: str
    argv: tuple[str, ...]
    user: str
    protocol: str
    exit_code: int
    time: float


@dataclass(frozen=True)
class RestartRecord:
    namespace: str
    name: str
    user: str
    time: float
    body: dict


@dataclass
class _RequestInfo:
    """What the apiserver's request-info parser extracts from a URL (for authz and routing)."""
    verb: str
    group: str = ""
    version: str = ""
    plural: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    discovery: Callable[[], dict | None] | None = None

    @property
    def rbac_resource(self) -> str:
        return f"{self.plural}/{self.subresource}" if self.subresource else self.plural

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


@dataclass
class _InjectedError:
    method: str | None
    path: str
    error: ApiError
    times: int


@dataclass
class _InjectedRaw:
    method: str | None
    path: str
    status: int
    body: bytes
    content_type: str
    headers: dict
    trickle: float          # seconds between body bytes (0: all at once)
    times: int


@dataclass
class _InjectedDelay:
    method: str | None
    path: str
    seconds: float
    times: int


class ApiServer:
    """A fake kube-apiserver for tests.  Start once per session; call :meth:`reset` per test."""

    def __init__(self, workdir: str | os.PathLike | None = None, *,
                 exec_protocols: Iterable[str] = (V5_PROTOCOL, V4_PROTOCOL)) -> None:
        self._own_workdir = workdir is None
        self.workdir = os.fspath(workdir) if workdir else tempfile.mkdtemp(prefix="virtio-apiserver-")
        self._default_exec_protocols = tuple(exec_protocols)
        self.store = Store()
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._inflight = 0                       # requests being handled (see release_pauses)
        self._release: asyncio.Event | None = None   # set to end pending delays; loop thread only
        self._reset_state()

    # ------------------------------------------------------------------------------------------
    # lifecycle

    def _reset_state(self) -> None:
        with self._lock:
            self.store.clear()
            self.users: dict[str, User] = default_users()
            self.requests: list[RequestRecord] = []
            self.exec_log: list[ExecRecord] = []
            self.restarts: list[RestartRecord] = []
            self.errors: list[str] = []          # tracebacks of unexpected handler exceptions
            self.exec_protocols: tuple[str, ...] = self._default_exec_protocols
            # Real API servers never send v5 CLOSE frames to the client (only clients send them);
            # switch this on to check that a client tolerates them anyway.
            self.exec_send_close_frames = False
            self.exec_chunk_size = 32 * 1024
            self.exec_delay = 0.0                # seconds before a command "finishes"
            self.exec_handshake_delay = 0.0      # seconds before the exec WebSocket upgrade is answered
            self.exec_handlers: dict[str, ExecHandler] = {}
            # How the kubelet ends an exec: "exit" (the command's exit status), "internal-error"
            # (the runtime could not start it: an InternalError Status, as when the image has no
            # virsh), "drop" (the connection closes with no status at all), "endless" (stdout
            # never ends; the server stops after exec_endless_limit bytes or a client close).
            self.exec_outcome = "exit"
            self.exec_endless_limit = 64 * 1024 * 1024
            # Which verbs a WebSocket exec is authorized with: "get" (Kubernetes before 1.35),
            # "both" (1.35 on: get and create), "create" (what a SPDY POST needs).
            self.exec_authz = "both"
            # API groups the server does not serve: any path under /apis/<group> answers the
            # real server's fallback, `404 page not found` in text/plain, and discovery omits it.
            self.unserved_groups: set[str] = set()
            self._raw: list[_InjectedRaw] = []
            self.on_restart: Callable[[str, str], None] | None = None
            self._virsh: dict[tuple[str, str], VirshConfig] = {}
            self._write_hooks: dict[tuple, Callable[[dict], object]] = {}
            self._injected: list[_InjectedError] = []
            self._delays: list[_InjectedDelay] = []

    def reset(self) -> None:
        """Forget all objects, logs, hooks, extra users and switches (between tests)."""
        self.release_pauses()
        self._reset_state()

    def release_pauses(self, wait: float = 5.0) -> None:
        """End every pending delay (inject_delay, exec_delay, exec_handshake_delay) now and wait
        up to `wait` seconds until the requests being handled are done, so a request whose
        client gave up cannot log into the next test."""
        loop = self._loop
        if loop is None:
            return

        def release() -> None:
            if self._release is not None:
                self._release.set()
                self._release = None
        loop.call_soon_threadsafe(release)
        deadline = time.time() + wait
        while time.time() < deadline:
            with self._lock:
                if self._inflight == 0:
                    return
            time.sleep(0.01)

    async def _pause(self, seconds: float) -> None:
        """asyncio.sleep(seconds) that release_pauses() cuts short."""
        if seconds <= 0:
            return
        if self._release is None:
            self._release = asyncio.Event()
        try:
            await asyncio.wait_for(self._release.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    def start(self) -> "ApiServer":
        self.tls = tls.generate(os.path.join(self.workdir, "tls"))
        # A second, unrelated CA for kubeconfigs that must fail TLS verification.
        self.bad_tls = tls.generate(os.path.join(self.workdir, "bad-tls"), common_name="unrelated CA")
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(self.tls.server_cert, self.tls.server_key)

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.port = sock.getsockname()[1]

        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024 * 1024)
                app.router.add_route("*", "/{tail:.*}", self._handle)
                self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
                loop.run_until_complete(self._runner.setup())
                site = web.SockSite(self._runner, sock, ssl_context=ssl_context)
                loop.run_until_complete(site.start())
            except BaseException as e:  # pragma: no cover - reported to start()
                failure.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="virtio-test-apiserver", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)
        self._loop = self._thread = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "ApiServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_pem(self) -> bytes:
        return self.tls.ca_pem()

    # ------------------------------------------------------------------------------------------
    # test helpers: objects

    def put(self, *objects: dict) -> dict | list[dict]:
        """Create or overwrite objects as-is (status included).  Returns the stored copies.

        Launcher pods get a :class:`VirshConfig` derived from their runAsUser and
        `kubevirt.io/domain` annotation unless one was set with :meth:`virsh` already.
        """
        stored = []
        for obj in objects:
            saved = self.store.put(obj)
            if saved["kind"] == "Pod":
                self._default_virsh(saved)
            stored.append(saved)
        return stored[0] if len(stored) == 1 else stored

    def get(self, kind: str, name: str, namespace: str = "default") -> dict | None:
        return self.store.get(res.resolve(kind), namespace, name)

    def list(self, kind: str, namespace: str | None = None) -> list[dict]:
        return self.store.list(res.resolve(kind), namespace)

    def delete(self, kind: str, name: str, namespace: str = "default") -> dict | None:
        resource = res.resolve(kind)
        with self._lock:
            if resource is res.POD:
                self._virsh.pop((namespace, name), None)
        return self.store.delete(resource, namespace, name)

    def mutate(self, kind: str, name: str, fn: Callable[[dict], object], namespace: str = "default") -> dict:
        """Edit a stored object in place (bumps resourceVersion, and generation if spec changed)."""
        return self.store.mutate(res.resolve(kind), namespace, name, fn)

    # ------------------------------------------------------------------------------------------
    # test helpers: hooks

    def concurrent_edit(self, kind: str, name: str, namespace: str = "default",
                        mutate: Callable[[dict], object] | None = None) -> None:
        """One-shot: just before the next PATCH/PUT of this object is evaluated, apply `mutate`
        to the stored object (default: add label `test.kubevirt.io/concurrent-edit: "true"`),
        as if another client wrote between our client's read and its write."""
        def add_label(obj: dict) -> None:
            obj["metadata"].setdefault("labels", {})["test.kubevirt.io/concurrent-edit"] = "true"
        resource = res.resolve(kind)
        with self._lock:
            self._write_hooks[Store.key(resource, namespace, name)] = mutate or add_label

    def inject_raw(self, path: str, status: int = 200, body: bytes | str = b"", *, content_type: str = "application/json",
                   method: str | None = None, headers: dict | None = None, trickle: float = 0.0, times: int = 1) -> None:
        """Answer the next `times` requests whose path contains `path` with exactly this status,
        body and content type (an HTML login page, truncated JSON, ...); `trickle` > 0 sends
        the body one byte every `trickle` seconds (a stalled proxy).  Checked before inject_error."""
        raw = body.encode() if isinstance(body, str) else bytes(body)
        with self._lock:
            self._raw.append(_InjectedRaw(method.upper() if method else None, path, status, raw, content_type,
                                          dict(headers or {}), trickle, times))

    def inject_error(self, path: str, code: int = 500, *, method: str | None = None, reason: str | None = None,
                     message: str | None = None, times: int = 1, retry_after: int | None = None) -> None:
        """Answer the next `times` requests whose path contains `path` (and method matches, if
        given) with a Status error instead of serving them (after authentication/authorization);
        `retry_after` adds a Retry-After header (seconds), as the server does for 429/503."""
        reasons = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
                   429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
                   504: "Timeout"}
        err = ApiError(code, reason or reasons.get(code, "Unknown"),
                       message or f"injected error {code} for {path}")
        if retry_after is not None:
            err.headers = {"Retry-After": str(retry_after)}
        with self._lock:
            self._injected.append(_InjectedError(method.upper() if method else None, path, err, times))

    def inject_delay(self, path: str, seconds: float, *, method: str | None = None, times: int = 1) -> None:
        """Hold the next `times` requests whose path contains `path` (and method matches, if
        given) for `seconds` before serving them (after authentication/authorization): a slow
        API server.  reset() and release_pauses() end the wait early."""
        with self._lock:
            self._delays.append(_InjectedDelay(method.upper() if method else None, path, seconds, times))

    def delays_left(self, path: str) -> int:
        """How many requests the delays injected for `path` still wait for (0: all arrived)."""
        with self._lock:
            return sum(d.times for d in self._delays if d.path == path)

    def add_user(self, name: str, rules: Iterable[Rule], token: str | None = None) -> User:
        user = User(name, token or token_for(name), list(rules))
        with self._lock:
            self.users[name] = user
        return user

    def token(self, user: str) -> str:
        return self.users[user].token

    # ------------------------------------------------------------------------------------------
    # test helpers: exec / virsh

    def virsh(self, namespace: str, pod: str) -> VirshConfig:
        """The (mutable) virsh simulation of a pod's `compute` container."""
        with self._lock:
            return self._virsh.setdefault((namespace, pod), VirshConfig())

    def set_virsh(self, namespace: str, pod: str, config: VirshConfig) -> None:
        with self._lock:
            self._virsh[(namespace, pod)] = config

    def set_domain(self, namespace: str, pod: str, domain: str, xml: str, *, inactive: str | None = None) -> None:
        cfg = self.virsh(namespace, pod)
        cfg.domains[domain] = xml
        if inactive is not None:
            cfg.inactive_domains[domain] = inactive

    def _default_virsh(self, pod: dict) -> None:
        from .objects import minimal_domain_xml
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        with self._lock:
            if key in self._virsh:
                return
            root = _pod_uid(pod) == 0
            domains = {}
            vmi_name = pod["metadata"].get("annotations", {}).get("kubevirt.io/domain")
            if vmi_name:
                domain = f"{key[0]}_{vmi_name}"
                vmi_uid = pod["metadata"].get("labels", {}).get("kubevirt.io/created-by", "")
                domains[domain] = minimal_domain_xml(key[0], vmi_name, vmi_uid)
            self._virsh[key] = VirshConfig.for_root(root, domains)

    # ------------------------------------------------------------------------------------------
    # test helpers: logs

    def request_log(self, *, include_discovery: bool = False, method: str | None = None,
                    path_prefix: str | None = None, user: str | None = None) -> list[RequestRecord]:
        """Requests received since the last reset, oldest first, filtered."""
        with self._lock:
            records = list(self.requests)
        return [r for r in records
                if (include_discovery or not r.is_discovery)
                and (method is None or r.method == method.upper())
                and (path_prefix is None or r.path.startswith(path_prefix))
                and (user is None or r.user == user)]

    def api_request_count(self, **filters) -> int:
        """Number of non-discovery requests (exec upgrades included) since the last reset."""
        return len(self.request_log(**filters))

    # ------------------------------------------------------------------------------------------
    # kubeconfig

    def kubeconfig(self, path: str | os.PathLike, user: str = "admin", namespace: str | None = None,
                   context_name: str | None = None, bad_ca: bool = False,
                   extra_contexts: Iterable[dict | kubeconfig_mod.ContextSpec] = ()) -> str:
        """Write a kubeconfig whose current context uses `user`'s bearer token.

        `extra_contexts` adds more contexts to the same file: dicts with keys name, user,
        namespace (optional) and bad_ca (optional).  Returns the path as a string.
        """
        main = kubeconfig_mod.ContextSpec(context_name or f"{user}@virtio-test", user, namespace, bad_ca)
        contexts = [main] + [c if isinstance(c, kubeconfig_mod.ContextSpec) else kubeconfig_mod.ContextSpec(**c)
                             for c in extra_contexts]
        tokens = {c.user: self.users[c.user].token for c in contexts}
        doc = kubeconfig_mod.render(self.url, self.ca_pem, self.bad_tls.ca_pem(), tokens, contexts, main.name)
        return kubeconfig_mod.write(path, doc)

    # ------------------------------------------------------------------------------------------
    # HTTP plumbing

    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        started = time.time()
        request[_USER_KEY] = None
        request[_INFO_KEY] = None
        request[_LOGGED_KEY] = False
        with self._lock:
            self._inflight += 1
        try:
            try:
                response = await handler(request)
            except ConnectionError:
                # The client went away while we held its request (a delay it timed out on).
                response = web.Response(status=499, text="client closed the connection")
            except ApiError as e:
                response = web.json_response(e.status(), status=e.code, headers=getattr(e, "headers", None))
            except Exception:  # noqa: BLE001 - a bug in this server must not look like a network error
                text = traceback.format_exc()
                with self._lock:
                    self.errors.append(text)
                response = web.json_response(internal_error(text.strip().splitlines()[-1]).status(), status=500)
            if not request[_LOGGED_KEY]:
                self._log_request(request, response.status, started)
            return response
        finally:
            with self._lock:
                self._inflight -= 1

    def _log_request(self, request: web.Request, status: int, started: float) -> None:
        info: _RequestInfo | None = request[_INFO_KEY]
        user: User | None = request[_USER_KEY]
        record = RequestRecord(
            method=request.method, path=request.path, query=request.query_string,
            user=user.name if user else None, status=status, time=started, duration=time.time() - started,
            verb=info.verb if info else "", resource=info.rbac_resource if info else "",
            namespace=info.namespace if info else "", name=info.name if info else "", raw_path=request.raw_path)
        with self._lock:
            self.requests.append(record)
        request[_LOGGED_KEY] = True

    def _authenticate(self, request: web.Request) -> User:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            with self._lock:
                for user in self.users.values():
                    if user.token == token.strip():
                        return user
        raise unauthorized()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        user = self._authenticate(request)
        request[_USER_KEY] = user
        info = _parse_request(request)
        request[_INFO_KEY] = info
        parts = [p for p in request.path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "apis" and parts[1] in self.unserved_groups:
            if info.discovery is None and not self._authorized(user, info):
                raise forbidden(info.qualified, info.group, info.plural, info.name,
                                forbidden_reason(user.name, info.verb, info.group, info.rbac_resource, info.namespace))
            # The real server's fallback handler (no Status object): what kubectl shows as
            # `the server could not find the requested resource`.
            return web.Response(status=404, text="404 page not found\n", content_type="text/plain")
        if info.discovery is not None and parts == ["apis"] and self.unserved_groups:
            body = info.discovery()
            body["groups"] = [g for g in body["groups"] if g["name"] not in self.unserved_groups]
            return web.json_response(body)
        if info.discovery is not None:
            # Discovery is readable by every authenticated user (system:discovery).
            body = info.discovery()
            if body is None:
                raise path_not_found()
            return web.json_response(body)

        if not self._authorized(user, info):
            verbs = self._verbs(info)
            verb = next(v for v in verbs if not user.can(v, info.group, info.rbac_resource, info.namespace, info.name))
            why = forbidden_reason(user.name, verb, info.group, info.rbac_resource, info.namespace)
            raise forbidden(info.qualified, info.group, info.plural, info.name, why)
        raw = self._take_raw(request)
        if raw is not None:
            return await self._send_raw(request, raw)
        self._check_injected(request)
        await self._injected_delay(request)

        if info.group == "subresources.kubevirt.io":
            if info.plural == "virtualmachines" and info.subresource == "restart" and request.method == "PUT":
                return await self._restart(request, info, user)
            raise path_not_found()
        if info.plural == "namespaces" and not info.group:
            return self._namespaces(request, info)
        resource = res.find_resource(info.group, info.plural)
        gv = res.find_group_version(info.group, info.version)
        if resource is None or gv is None or resource not in gv.resources:
            raise path_not_found()
        if info.subresource == "exec" and resource is res.POD:
            return await self._exec(request, info, user)
        if info.subresource not in ("", "status") or (info.subresource == "status" and not info.name):
            raise path_not_found()
        if info.subresource == "status" and not resource.status_subresource:
            raise path_not_found()
        return await self._rest(request, info, resource)

    def _verbs(self, info: _RequestInfo) -> tuple[str, ...]:
        if info.rbac_resource == "pods/exec":
            # kube-apiserver: a WebSocket upgrade is a GET, authorized as `get`; with the
            # AuthorizePodWebsocketUpgradeCreatePermission gate (beta, on from 1.35) `create` too.
            return {"get": ("get",), "create": ("create",), "both": ("get", "create")}[self.exec_authz]
        return (info.verb,)

    def _authorized(self, user: User, info: _RequestInfo) -> bool:
        return all(user.can(v, info.group, info.rbac_resource, info.namespace, info.name) for v in self._verbs(info))

    def _take_raw(self, request: web.Request) -> _InjectedRaw | None:
        with self._lock:
            for raw in self._raw:
                if raw.times > 0 and raw.path in request.path and raw.method in (None, request.method):
                    raw.times -= 1
                    return raw
        return None

    async def _send_raw(self, request: web.Request, raw: _InjectedRaw) -> web.StreamResponse:
        if not raw.trickle:
            return web.Response(status=raw.status, body=raw.body, headers=raw.headers, content_type=raw.content_type)
        response = web.StreamResponse(status=raw.status, headers={**raw.headers, "Content-Type": raw.content_type,
                                                                  "Content-Length": str(len(raw.body))})
        await response.prepare(request)
        try:
            for i in range(len(raw.body)):
                await response.write(raw.body[i:i + 1])
                await self._pause(raw.trickle)
                if self._release is None:       # release_pauses(): stop trickling
                    break
        except (ConnectionError, RuntimeError):
            pass                                # the client gave up (what a test expects)
        return response

    async def _injected_delay(self, request: web.Request) -> None:
        seconds = 0.0
        with self._lock:
            for d in self._delays:
                if d.times > 0 and d.path in request.path and d.method in (None, request.method):
                    d.times -= 1
                    seconds = d.seconds
                    break
        await self._pause(seconds)

    def _check_injected(self, request: web.Request) -> None:
        with self._lock:
            for inj in self._injected:
                if inj.times > 0 and inj.path in request.path and inj.method in (None, request.method):
                    inj.times -= 1
                    raise inj.error

    # ------------------------------------------------------------------------------------------
    # REST objects

    async def _rest(self, request: web.Request, info: _RequestInfo, resource: res.Resource) -> web.StreamResponse:
        method = request.method
        if method == "GET" and info.verb == "watch":
            raise method_not_supported(resource.kind, "watch")
        if method == "GET" and info.name:
            obj = self.store.get(resource, info.namespace, info.name)
            if obj is None:
                raise not_found(resource, info.name)
            return self._object_response(request, resource, obj)
        if method == "GET":
            return self._list(request, info, resource)
        if method == "POST" and not info.name:
            return self._create(await _json_body(request), request, info, resource)
        if method == "PUT" and info.name:
            body = await _json_body(request)
            return web.json_response(self._update(body, request, info, resource))
        if method == "PATCH" and info.name:
            return web.json_response(await self._patch(request, info, resource))
        if method == "DELETE" and info.name:
            if _dry_run(request):
                obj = self.store.get(resource, info.namespace, info.name)
            else:
                obj = self.delete(resource.plural, info.name, info.namespace)
            if obj is None:
                raise not_found(resource, info.name)
            return web.json_response(obj)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _object_response(self, request: web.Request, resource: res.Resource, obj: dict) -> web.StreamResponse:
        if tables.wants_table(request.headers.get("Accept", "")):
            table = tables.to_table(resource, [obj], obj["metadata"]["resourceVersion"],
                                    request.query.get("includeObject", "Metadata"))
            return web.json_response(table)
        return web.json_response(obj)

    def _list(self, request: web.Request, info: _RequestInfo, resource: res.Resource) -> web.StreamResponse:
        if info.namespace and not resource.namespaced:
            raise path_not_found()
        label_match = parse_label_selector(request.query.get("labelSelector"))
        field_match = parse_field_selector(request.query.get("fieldSelector"), resource.plural)
        # Paging (limit/continue), etcd key order and compact bodies: see paging.py.
        def match(o: dict) -> bool:
            return label_match(o.get("metadata", {}).get("labels") or {}) and field_match(o)
        if tables.wants_table(request.headers.get("Accept", "")):
            filtered = bool(request.query.get("labelSelector") or request.query.get("fieldSelector"))
            limit = int(request.query.get("limit") or 0) or None
            items, meta = paging.list_page(self.store, resource, info.namespace or None, match, limit,
                                           request.query.get("continue"), filtered)
            table = tables.to_table(resource, copy.deepcopy(items), meta["resourceVersion"],
                                    request.query.get("includeObject", "Metadata"))
            table.setdefault("metadata", {}).update({k: v for k, v in meta.items() if k != "resourceVersion"})
            return web.json_response(table)
        return web.Response(body=paging.list_body(self.store, resource, info.namespace or None, match, request.query),
                            content_type="application/json")

    def _create(self, body: dict, request: web.Request, info: _RequestInfo, resource: res.Resource) -> web.StreamResponse:
        meta = body.setdefault("metadata", {})
        body["apiVersion"], body["kind"] = resource.api_version, resource.kind
        if resource.namespaced:
            if meta.get("namespace") and meta["namespace"] != info.namespace:
                raise bad_request("the namespace of the provided object does not match the namespace "
                                  "sent on the request")
            meta["namespace"] = info.namespace
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise invalid(resource, "", "metadata.name: Required value: name or generateName is required")
            meta["name"] = meta["generateName"] + _random_suffix()
        for server_owned in ("uid", "resourceVersion", "creationTimestamp", "generation"):
            meta.pop(server_owned, None)
        with self.store.lock:
            if self.store.get(resource, info.namespace, meta["name"]) is not None:
                raise already_exists(resource, meta["name"])
            if _dry_run(request):
                return web.json_response(body, status=201)
            stored = self.put(body)
        return web.json_response(stored, status=201)

    def _take_write_hook(self, resource: res.Resource, namespace: str, name: str) -> None:
        with self._lock:
            hook = self._write_hooks.pop(Store.key(resource, namespace, name), None)
        if hook is not None and self.store.get(resource, namespace, name) is not None:
            self.store.mutate(resource, namespace, name, hook)

    def _write(self, request: web.Request, info: _RequestInfo, resource: res.Resource,
               compute: Callable[[dict], dict]) -> dict:
        """Shared PATCH/PUT path: optimistic concurrency, server-owned fields, dry run, no-op."""
        self._take_write_hook(resource, info.namespace, info.name)
        with self.store.lock:
            current = self.store.get(resource, info.namespace, info.name)
            if current is None:
                raise not_found(resource, info.name)
            new = compute(copy.deepcopy(current))
            if not isinstance(new, dict):
                raise bad_request("the patched or updated object is not a JSON object")
            meta = new.get("metadata")
            if not isinstance(meta, dict):
                meta = new["metadata"] = {}
            # A resourceVersion in the request is a precondition, exactly like the real server:
            # if it is not the stored one, someone else wrote first -> 409 Conflict.
            sent_rv = meta.get("resourceVersion")
            cur_meta = current["metadata"]
            if sent_rv not in (None, "") and str(sent_rv) != cur_meta["resourceVersion"]:
                raise conflict(resource, info.name)
            # Server-owned metadata cannot be changed by clients.
            for k in ("name", "namespace", "uid", "creationTimestamp", "generation", "resourceVersion"):
                if k in cur_meta:
                    meta[k] = cur_meta[k]
                else:
                    meta.pop(k, None)
            new["apiVersion"], new["kind"] = current["apiVersion"], current["kind"]
            if info.subresource == "status":
                # The status endpoint only changes .status.
                new = {**copy.deepcopy(current), "status": new.get("status", {})}
            elif resource.status_subresource:
                # With the status subresource enabled, writes to the main endpoint keep the old status.
                new.pop("status", None)
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
            if new == current:
                return current                    # a no-op write is not stored and keeps its resourceVersion
            spec_changed = new.get("spec") != current.get("spec")
            if _dry_run(request):
                if spec_changed:
                    new["metadata"]["generation"] = int(cur_meta.get("generation", 1)) + 1
                return new
            return self.store.replace(resource, new, bump_generation=spec_changed)

    def _update(self, body: dict, request: web.Request, info: _RequestInfo, resource: res.Resource) -> dict:
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != info.name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL "
                              f"({info.name})")
        if resource.custom and not meta.get("resourceVersion"):
            # Custom resources refuse unconditional updates.
            raise invalid(resource, info.name, "metadata.resourceVersion: Invalid value: 0x0: "
                                               "must be specified for an update",
                          [{"reason": "FieldValueInvalid", "message": "Invalid value: 0x0: must be "
                            "specified for an update", "field": "metadata.resourceVersion"}])
        return self._write(request, info, resource, lambda current: body)

    async def _patch(self, request: web.Request, info: _RequestInfo, resource: res.Resource) -> dict:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        raw = await request.read()
        if content_type == STRATEGIC_PATCH and resource.custom:
            # Custom resources have no Go struct tags to drive a strategic merge: 415.
            raise unsupported_media_type(
                "the body of the request was in an unknown format - accepted media types include: "
                f"{JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}")
        if content_type not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH):
            raise unsupported_media_type(
                "the body of the request was in an unknown format - accepted media types include: "
                f"{JSON_PATCH}, {MERGE_PATCH}" + ("" if resource.custom else f", {STRATEGIC_PATCH}"))
        try:
            patch = json.loads(raw or b"null")
        except ValueError as e:
            raise bad_request(f"error decoding patch: {e}") from None

        def compute(current: dict) -> dict:
            try:
                if content_type == JSON_PATCH:
                    return json_patch(current, patch)
                if not isinstance(patch, dict):
                    raise bad_request("json: cannot unmarshal into Go value of type map[string]interface {}")
                # Strategic merge on built-in types is approximated by a JSON merge patch.
                return merge_patch(current, patch)
            except PatchFormatError as e:
                raise bad_request(str(e)) from None
            except PatchError as e:
                raise unprocessable(str(e)) from None

        return self._write(request, info, resource, compute)

    def _namespaces(self, request: web.Request, info: _RequestInfo) -> web.StreamResponse:
        if request.method != "GET":
            raise ApiError(405, "MethodNotAllowed", "the test server does not write namespaces")
        known = sorted(self.store.namespaces() | {"default", "kube-system", "kubevirt"})

        def ns_obj(name: str) -> dict:
            return {"kind": "Namespace", "apiVersion": "v1",
                    "metadata": {"name": name, "uid": f"00000000-0000-4000-8000-{abs(hash(name)) % 10**12:012d}",
                                 "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z",
                                 "labels": {"kubernetes.io/metadata.name": name}},
                    "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
        if info.name:
            if info.name not in known:
                raise not_found(res.NAMESPACE, info.name)
            return web.json_response(ns_obj(info.name))
        return web.json_response({"kind": "NamespaceList", "apiVersion": "v1",
                                  "metadata": {"resourceVersion": self.store.resource_version()},
                                  "items": [{k: v for k, v in ns_obj(n).items() if k not in ("kind", "apiVersion")}
                                            for n in known]})

    # ------------------------------------------------------------------------------------------
    # KubeVirt restart subresource (served by virt-api in a real cluster)

    async def _restart(self, request: web.Request, info: _RequestInfo, user: User) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as e:
            raise bad_request(f"Can not unmarshal Request body to struct, error: {e}") from None
        dry_run = "All" in (body.get("dryRun") or []) or _dry_run(request)
        # virt-api names the resource in the singular in its errors ("virtualmachine.kubevirt.io").
        vm = self.store.get(res.VM, info.namespace, info.name)
        if vm is None:
            raise not_found(res.VM, info.name, qualified="virtualmachine.kubevirt.io", plural="virtualmachine")
        strategy = run_strategy(vm)
        if strategy not in RESTARTABLE_STRATEGIES:
            raise conflict(res.VM, info.name, f"runStrategy {strategy} does not allow restart requests",
                           qualified="virtualmachine.kubevirt.io", plural="virtualmachine")
        vmi = self.store.get(res.VMI, info.namespace, info.name)
        if vmi is None or vmi.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            raise conflict(res.VM, info.name, "the VirtualMachineInstance is not running, nothing to restart",
                           qualified="virtualmachine.kubevirt.io", plural="virtualmachine")
        if not dry_run:
            def request_restart(obj: dict) -> None:
                # virt-api asks the VM controller to stop the current VMI and start a new one.
                obj.setdefault("status", {})["stateChangeRequests"] = [
                    {"action": "Stop", "uid": vmi["metadata"]["uid"]}, {"action": "Start"}]
            self.store.mutate(res.VM, info.namespace, info.name, request_restart)
            with self._lock:
                self.restarts.append(RestartRecord(info.namespace, info.name, user.name, time.time(), body))
            if self.on_restart:
                self.on_restart(info.namespace, info.name)
        return web.Response(status=202)

    # ------------------------------------------------------------------------------------------
    # pod exec over WebSocket

    async def _exec(self, request: web.Request, info: _RequestInfo, user: User) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            raise ApiError(405, "MethodNotAllowed", "exec accepts GET and POST only")
        pod = self.store.peek(res.POD, info.namespace, info.name)  # read only (custom handlers get a copy)
        if pod is None:
            raise not_found(res.POD, info.name)
        q = request.query
        argv = q.getall("command", [])
        flags = {k: q.get(k, "false").lower() in ("true", "1") for k in ("stdin", "stdout", "stderr", "tty")}
        # The same validation order and wording as the pod exec REST handler.
        if not (flags["stdin"] or flags["stdout"] or flags["stderr"]):
            raise bad_request("you must specify at least 1 of stdin, stdout, stderr")
        if not argv:
            raise bad_request("you must specify at least one command for the container")
        names = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
        init_names = [c["name"] for c in pod.get("spec", {}).get("initContainers", [])]
        container = q.get("container", "")
        if not container:
            if len(names) != 1:
                raise bad_request(f"a container name must be specified for pod {info.name}, choose one of: "
                                  f"[{' '.join(names)}]")
            container = names[0]
        if container not in names + init_names:
            raise bad_request(f"container {container} is not valid for pod {info.name}")
        phase = pod.get("status", {}).get("phase", "")
        if phase in ("Succeeded", "Failed"):
            raise bad_request(f"cannot exec into a container in a completed pod; current phase is {phase}")
        if not pod.get("spec", {}).get("nodeName"):
            raise bad_request(f"pod {info.name} does not have a host assigned")
        state = next((s.get("state") or {} for s in pod.get("status", {}).get("containerStatuses") or []
                      if s.get("name") == container), None)
        if state is not None and "running" not in state:
            # The kubelet cannot find a running container (e.g. still ContainerCreating); kubectl
            # prints it as `unable to upgrade connection: container not found ("compute")`.
            # (HTTP code approximated.)
            raise ApiError(500, "InternalError", f'container not found ("{container}")')
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise bad_request("Upgrade request required (this test server speaks WebSocket exec only, no SPDY)")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        protocols = tuple(self.exec_protocols)
        if offered and not any(p in protocols for p in offered):
            raise bad_request(f"requested protocol(s) are not supported: {offered}; supports {list(protocols)}")

        await self._pause(self.exec_handshake_delay)
        ws = web.WebSocketResponse(protocols=protocols, compress=False, timeout=5.0, autoping=True)
        await ws.prepare(request)
        protocol = ws.ws_protocol or ""
        # Log the upgrade now: the client may finish reading before this handler returns.
        self._log_request(request, 101, time.time())

        if container == "compute":
            ctx = ExecContext(info.namespace, copy.deepcopy(pod) if self.exec_handlers else pod, container,
                              list(argv), user.name, self.virsh(info.namespace, info.name), _pod_uid(pod))
            result = run_command(ctx, dict(self.exec_handlers))
        else:
            result = ExecResult(stderr=f'exec: "{argv[0]}": executable file not found in $PATH: unknown\n',
                                exit_code=127)
        with self._lock:
            self.exec_log.append(ExecRecord(info.namespace, info.name, container, tuple(argv), user.name,
                                            protocol, result.exit_code, time.time()))
        await self._pause(self.exec_delay)

        out, err = result.stdout.encode(), result.stderr.encode()
        if flags["tty"]:            # a terminal has a single output stream
            out, err = out + err, b""
        outcome = self.exec_outcome
        try:
            if outcome == "endless":
                await self._send_endless(ws, out or b"<domain>")
                await ws.close()
                return ws
            if outcome != "internal-error":
                if flags["stdout"]:
                    await self._send_chunks(ws, STDOUT, out)
                if flags["stderr"] or flags["tty"]:
                    await self._send_chunks(ws, STDERR, err)
        except ConnectionError:              # the client went away (a cap or deadline it enforces)
            return ws
        if outcome == "drop":
            await ws.close()                     # no status frame: the connection just ends
            return ws
        status = internal_exec_error(argv[0] if argv else "") if outcome == "internal-error" \
            else exit_status(result.exit_code)
        await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
        if self.exec_send_close_frames and protocol == V5_PROTOCOL:
            for channel in (STDOUT, STDERR, ERROR):
                await ws.send_bytes(bytes([CLOSE, channel]))
        await ws.close()
        return ws

    async def _send_endless(self, ws: web.WebSocketResponse, data: bytes) -> None:
        """stdout that never ends (a command stuck in a loop), until the client goes away or
        exec_endless_limit bytes (so a client without a cap cannot hang the test run)."""
        size = max(1, int(self.exec_chunk_size))
        chunk = (data * (size // max(1, len(data)) + 1))[:size]
        sent = 0
        while sent < self.exec_endless_limit and not ws.closed:
            await ws.send_bytes(bytes([STDOUT]) + chunk)
            sent += len(chunk)
            await asyncio.sleep(0)

    async def _send_chunks(self, ws: web.WebSocketResponse, channel: int, data: bytes) -> None:
        size = max(1, int(self.exec_chunk_size))
        for i in range(0, len(data), size):
            await ws.send_bytes(bytes([channel]) + data[i:i + size])


# ----------------------------------------------------------------------------------------------
# helpers


def exit_status(code: int) -> dict:
    """The metav1.Status the kubelet writes on the error channel when a command ends."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: command exited with status {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def internal_exec_error(argv0: str) -> dict:
    """What the kubelet writes on the error channel when the runtime cannot start the command
    (apierrors.NewInternalError(err).Status(): the cause is text, not an exit code)."""
    err = (f'error executing command in container: failed to exec in container: failed to start exec: '
           f'OCI runtime exec failed: exec failed: unable to start container process: exec: "{argv0}": '
           f'executable file not found in $PATH: unknown')
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {err}",
            "reason": "InternalError", "details": {"causes": [{"message": err}]}, "code": 500}


def run_strategy(vm: dict) -> str:
    """spec.runStrategy, or the deprecated spec.running mapped to Always/Halted."""
    spec = vm.get("spec", {})
    if spec.get("runStrategy"):
        return spec["runStrategy"]
    return "Always" if spec.get("running") is True else "Halted"


def _pod_uid(pod: dict) -> int:
    spec = pod.get("spec", {})
    for c in spec.get("containers", []):
        if c.get("name") == "compute" and "runAsUser" in (c.get("securityContext") or {}):
            return int(c["securityContext"]["runAsUser"])
    return int((spec.get("securityContext") or {}).get("runAsUser", 0))


def _dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for v in values:
        if v != "All":
            raise bad_request(f'Invalid dry run value: "{v}"; valid values are: "All"')
    return bool(values)


async def _json_body(request: web.Request) -> dict:
    try:
        body = json.loads(await request.read())
    except ValueError as e:
        raise bad_request(f"error decoding request body: {e}") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body


def _random_suffix(n: int = 5) -> str:
    import random
    alphabet = "bcdfghjklmnpqrstvwxz2456789"       # the alphabet generateName uses
    return "".join(random.choice(alphabet) for _ in range(n))


def _parse_request(request: web.Request) -> _RequestInfo:
    """Turn a URL into verb/group/version/resource/namespace/name like the apiserver does."""
    # Split the path as sent, then unescape each segment: a %2F inside a name stays inside it.
    parts = [unquote(p) for p in request.raw_path.split("?", 1)[0].split("/") if p]
    method = request.method
    if parts == ["version"]:
        return _RequestInfo("discovery", discovery=res.version_info)
    if parts == ["api"]:
        return _RequestInfo("discovery", discovery=res.core_versions)
    if parts == ["apis"]:
        return _RequestInfo("discovery", discovery=res.group_list)
    if len(parts) >= 2 and parts[0] == "openapi":
        return _RequestInfo("discovery", discovery=lambda: None)
    if parts and parts[0] == "api" and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts and parts[0] == "apis" and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    elif parts and parts[0] == "apis" and len(parts) == 2:
        return _RequestInfo("discovery", discovery=lambda: res.group(parts[1]))
    else:
        return _RequestInfo("discovery", discovery=lambda: None)
    if not rest:
        gv = res.find_group_version(group, version)
        return _RequestInfo("discovery", discovery=lambda: res.resource_list(gv) if gv else None)

    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if len(rest) > 3:
        return _RequestInfo("discovery", discovery=lambda: None)

    if sub == "exec" and plural == "pods":
        verb = "get" if method == "GET" else "create"   # see ApiServer._verbs for what is checked
    elif method == "GET":
        watch = request.query.get("watch", "").lower() in ("true", "1")
        verb = "watch" if watch else ("get" if name else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection"}.get(method, method.lower())
    return _RequestInfo(verb, group, version, plural, sub, namespace, name)
