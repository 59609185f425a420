"""The cluster adapter: the only module that imports `kubernetes`.

Everything goes through the official client's generic `ApiClient.call_api` with raw JSON
(`_preload_content=False`): KubeVirt objects are custom resources anyway, and skipping the
typed APIs and model deserialisation is what keeps a live command fast (see bench/explain).
Pod exec opens a WebSocket as the client's create_websocket does (v5 and v4 channel
protocols) with one TLS context per Cluster, and reads the frames itself, as bytes, with a
deadline and a size cap (docs/cluster.md, "Exec").

Bounds (docs/cluster.md, "Timeouts, caps and retries"); nothing waits without one:
  REST request   --request-timeout, else REQUEST_TIMEOUT (60 s): connect, TLS handshake,
                 headers and the whole body (a body that trickles in is cut at the deadline)
  exec           --request-timeout, else EXEC_TIMEOUT (30 s): handshake and command together;
                 stdout+stderr capped at EXEC_OUTPUT_CAP (8 MiB), the status at 64 KiB
  retries        GET only, on 429/503: at most READ_RETRIES (3), each wait at most
                 RETRY_AFTER_MAX (10 s, and never past the request timeout); never for writes
Path segments (namespace, name) are always percent-quoted: no value can change which object
a request goes to.  KUBECTL_VIRTIO_DEBUG=1 (or Cluster(debug=True), which --debug sets)
logs each request on stderr: method, path, status, time -- never a header, token or body.
KUBECTL_VIRTIO_TIMINGS=1 prints where the time went on stderr at exit (bench/explain reads it).
"""
from __future__ import annotations

import heapq
import json
import os
import re
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote

from kubectl_virtio.errors import ClusterError

KUBEVIRT = ("kubevirt.io", "v1")
SUBRESOURCES = ("subresources.kubevirt.io", "v1")
INSTANCETYPE = ("instancetype.kubevirt.io", "v1beta1")
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
EXEC_TIMEOUT = 30.0  # seconds, for the exec when --request-timeout is not given
REQUEST_TIMEOUT = 60.0  # seconds, for one REST request when --request-timeout is not given
EXEC_V5, EXEC_V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"  # the exec channel protocols offered
# stdout+stderr of one exec: the largest real domain XML is a few hundred KiB (a VM with
# hundreds of disks and NICs); 8 MiB is ample room and still bounds a command that never ends.
EXEC_OUTPUT_CAP = 8 * 1024 * 1024
EXEC_STATUS_CAP = 64 * 1024  # a metav1.Status is a few hundred bytes
AUTH_REUSE = 1.0  # seconds an exec reuses the Authorization header the client gave the one before
READ_RETRIES = 3  # GET retries on 429/503
RETRY_AFTER_MAX = 10.0  # seconds: the longest Retry-After honoured (and the backoff cap)


# --- Importing the client -------------------------------------------------------------------
#
# `import kubernetes` (37.0.x) runs kubernetes/__init__, which imports kubernetes.config and
# kubernetes.stream.  Their module-level imports include modules that only rare paths use:
#   requests_oauthlib.OAuth2Session, oauthlib.oauth2  only in KubeConfigLoader._refresh_oidc
#                                                     (an OIDC id-token that has expired)
#   requests.utils.should_bypass_proxies              imported by stream/ws_client.py, unused there
#   dateutil.parser.parse                             ApiClient's typed date deserialisation
# Together (requests and charset_normalizer behind them) about a quarter of the import.
# While kubernetes is imported, these names are bound to stand-ins that import the real
# module when first used, so OIDC refresh and everything else run the client's own code.
# importlib.util.LazyLoader alone cannot do this: the import statement reads the module's
# `__spec__`, which already triggers LazyLoader's load, and `from X import Y` reads Y.
_DEFERRED = {
    "requests_oauthlib": ("OAuth2Session",),
    "oauthlib.oauth2": (),
    "requests.utils": ("should_bypass_proxies",),
    "dateutil.parser": ("parse",),
    "pydantic": (),
    "kubernetes.client.api_response": (),
    # Three more used only off our path: urllib3.http2 reads h2's version when HTTP/2 is
    # switched on; kubernetes.watch reads docstrings with pydoc; ApiClient builds a
    # ThreadPool only for async requests.
    "importlib.metadata": ("version",),
    "pydoc": (),
    "multiprocessing.pool": ("ThreadPool",),
    # kubernetes/__init__ imports every subpackage; these four serve none of our calls (the
    # client, config and stream modules do not import them; utils.create_from_yaml imports
    # dynamic inside a function).
    "kubernetes.dynamic": (),
    "kubernetes.watch": (),
    "kubernetes.informer": (),
    "kubernetes.leaderelection": (),
    # stream/ws_client.py imports certifi (with importlib.resources) for create_websocket,
    # which we do not call; _exec_sslopt imports it when a kubeconfig has no CA.
    "certifi": ("where",),
    # The exec speaks its WebSocket itself (_ExecStream); websocket-client and the client's
    # stream package (6 ms of the import) are loaded only for an exec through a proxy.
    "kubernetes.stream": ("stream", "portforward"),
    # Configuration() reads multiprocessing.cpu_count() for its pool size, the package's only
    # use on our path: the stand-in answers as multiprocessing does (_cpu_count).
    "multiprocessing": (),
    # configuration.py and exceptions.py take NotRequired and Self from typing_extensions for
    # their annotations; typing has both since Python 3.11 (PEP 655, PEP 673).  On an older
    # Python the real module is imported (_stand_in_classes).
    "typing_extensions": (),
}
# kubernetes.client.api_client imports pydantic (with pydantic_core, about a third of the
# client's import) for two names the raw-JSON path never meets: `SecretStr`, tested with
# isinstance() in sanitize_for_serialization (no object can be a SecretStr before pydantic
# is imported), and `ApiResponse`, which only the typed response_deserialize builds.  Their
# stand-ins answer the isinstance() test and build the real ApiResponse when asked.


class _SecretStrCheck(type):
    def __instancecheck__(cls, obj):
        mod = sys.modules.get("pydantic")
        real = None if mod is None or type(mod) is _Deferred else getattr(mod, "SecretStr", None)
        return real is not None and isinstance(obj, real)


class _SecretStr(metaclass=_SecretStrCheck):
    pass


class _ApiResponse:
    def __class_getitem__(cls, item):  # the annotation ApiResponse[T] in api_client
        return cls

    def __new__(cls, *args, **kwargs):
        return _real_module("kubernetes.client.api_response").ApiResponse(*args, **kwargs)


def _cpu_count() -> int:
    """multiprocessing.cpu_count(), as Lib/multiprocessing/context.py answers it."""
    n = os.cpu_count()
    if n is None:
        raise NotImplementedError("cannot determine number of cpus")
    return n


def _stand_in_classes() -> Dict[str, Dict[str, Any]]:
    import typing

    names = {"pydantic": {"SecretStr": _SecretStr},
             "kubernetes.client.api_response": {"ApiResponse": _ApiResponse, "T": typing.TypeVar("T")},
             "multiprocessing": {"cpu_count": _cpu_count}}
    if hasattr(typing, "NotRequired") and hasattr(typing, "Self"):
        names["typing_extensions"] = {"NotRequired": typing.NotRequired, "Self": typing.Self}
    return names


class _Deferred(type(sys)):
    """A module stand-in; any attribute not set on it comes from the real module."""

    def __getattr__(self, attr):
        if attr.startswith("__"):  # import machinery probes (__path__, ...): not a package
            raise AttributeError(attr)
        return getattr(_real_module(self.__name__), attr)


def _real_module(name: str):
    import importlib

    if type(sys.modules.get(name)) is _Deferred:
        del sys.modules[name]
    return importlib.import_module(name)


def _forwarder(module: str, attr: str):
    def forward(*args, **kwargs):
        return getattr(_real_module(module), attr)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = attr
    return forward


def _import_client():
    """Import the client's modules that cluster access uses, deferring the rare-path ones."""
    if "kubernetes.config" in sys.modules:
        return
    import importlib.machinery
    import importlib.util

    installed = []
    classes = _stand_in_classes()
    try:
        # google-auth's GCP provider imports requests for real at kube_config's import: then
        # defer nothing (kube_config.py imports google.auth.transport.requests if present).
        gcp = importlib.util.find_spec("google") is not None and importlib.util.find_spec("google.auth") is not None
    except (ImportError, ValueError):
        gcp = True
    for name, attrs in ({} if gcp else _DEFERRED).items():
        if name in sys.modules or importlib.util.find_spec(name.partition(".")[0]) is None:
            continue  # already loaded, or missing: then the client fails exactly as it would
        if name == "typing_extensions" and name not in classes:
            continue  # a Python before 3.11: the real module
        stand_in = _Deferred(name)
        stand_in.__spec__ = importlib.machinery.ModuleSpec(name, None)
        for attr in attrs:
            setattr(stand_in, attr, _forwarder(name, attr))
        for attr, value in classes.get(name, {}).items():
            setattr(stand_in, attr, value)
        sys.modules[name] = stand_in
        installed.append(name)
    try:
        import kubernetes.client  # noqa: F401
        import kubernetes.config  # noqa: F401
    finally:
        for name in installed:  # later imports of these names get the real modules
            if type(sys.modules.get(name)) is _Deferred:
                del sys.modules[name]


# --- Where the time goes (KUBECTL_VIRTIO_TIMINGS=1) ------------------------------------------

class _Timings:
    PHASES = ("import", "config", "api", "exec")

    def __init__(self):
        self.spans: Dict[str, List[Tuple[float, float]]] = {p: [] for p in self.PHASES}
        self.lock = threading.Lock()

    def add(self, phase: str, start: float) -> None:
        with self.lock:
            self.spans[phase].append((start, time.perf_counter()))

    def report(self) -> None:
        parts = []
        for phase in self.PHASES:
            wall, end = 0.0, None  # wall time covered by the spans (parallel requests overlap)
            for a, b in sorted(self.spans[phase]):
                if end is None or a > end:
                    wall, end = wall + (b - a), b
                elif b > end:
                    wall, end = wall + (b - end), b
            parts.append("%s=%.1fms/%d" % (phase, wall * 1000, len(self.spans[phase])))
        print("kubectl-virtio timings: " + " ".join(parts), file=sys.stderr)


_timings: Optional[_Timings] = None
if os.environ.get("KUBECTL_VIRTIO_TIMINGS"):
    import atexit

    _timings = _Timings()
    atexit.register(_timings.report)


def _mark(phase: str, start: float) -> None:
    if _timings is not None:
        _timings.add(phase, start)


class ExecResult:
    """What a command run by exec gave: its exit code and its output, decoded."""

    __slots__ = ("returncode", "stdout", "stderr")

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    def __repr__(self):
        return "ExecResult(returncode=%r, stdout=%d chars, stderr=%r)" % (self.returncode, len(self.stdout),
                                                                         self.stderr[:200])


class NotFound(ClusterError):
    """The object does not exist (a 404 Status about that object)."""


class NotServed(ClusterError):
    """The server does not serve the API group/version at all (a 404 that is not a Status
    about the object: `404 page not found`, text/plain, from the server's fallback handler)."""


class Forbidden(ClusterError):
    pass


class Conflict(ClusterError):
    pass


class Timeout(ClusterError):
    pass


class BadResponse(ClusterError):
    """A 2xx answer that is not the JSON object asked for (HTML, truncated, wrong shape)."""


class ExecError(ClusterError):
    """The exec did not give a usable result: the kubelet could not run the command (a
    Status other than Success/NonZeroExitCode), the stream ended without a status, or the
    output went past EXEC_OUTPUT_CAP."""


def _load_client(kubeconfig: Optional[str], context: Optional[str], timeout: float = REQUEST_TIMEOUT):
    """ApiClient and default namespace, as kubectl resolves them: --kubeconfig, else
    $KUBECONFIG (a list), else ~/.kube/config, else the in-cluster service account."""
    start = time.perf_counter()
    _import_client()
    _mark("import", start)
    start = time.perf_counter()
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    _route_client_log()
    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    paths = [p for p in path.split(os.pathsep) if p]
    if kubeconfig and not os.path.exists(kubeconfig):
        raise ClusterError("kubeconfig %s does not exist" % kubeconfig)
    have_file = any(os.path.exists(p) for p in paths)
    try:
        if have_file:
            # One loader, built as load_kube_config builds it (kube_config.py
            # _get_kube_config_loader: the merged files, their save_changes to persist a refreshed
            # token), sets the client up and names the context's namespace; load_kube_config and
            # list_kube_config_contexts would each read and parse the files again.
            from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger

            cfg = client.Configuration()
            merged = KubeConfigMerger(path)
            if merged.config is None:
                raise ConfigException("Invalid kube-config file. No configuration found.")
            loader = KubeConfigLoader(config_dict=merged.config, config_base_path=None, active_context=context,
                                      config_persister=merged.save_changes)
            loader.load_and_set(cfg)
            active = loader.current_context
            namespace = (active.get("context") or {}).get("namespace") if isinstance(active, dict) else None
            namespace = namespace or "default"
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            if context:
                raise ClusterError("--context %s: no kubeconfig, only the in-cluster service account" % context)
            cfg = client.Configuration()
            config.load_incluster_config(client_configuration=cfg)
            try:
                with open(SA_NAMESPACE_FILE) as fh:
                    namespace = fh.read().strip() or "default"
            except OSError:
                namespace = "default"
        else:
            raise ClusterError("no kubeconfig found (%s) and not running in a cluster" % path,
                               "pass --kubeconfig, set KUBECONFIG, or run `kubectl config view` to check")
    except ConfigException as e:
        # The loader's messages name keys and paths; scrub anything secret-shaped anyway and
        # never print more than one bounded line of it.
        raise ClusterError("invalid kubeconfig %s: %s" % (path, _short(_scrub_config_text(str(e)))),
                           "check it with `kubectl config view`") from None
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as e:
        # Not the exception text: for a malformed entry it can be the entry itself (a user
        # dict with its token, password or client key).
        raise ClusterError("cannot load kubeconfig %s: an entry has the wrong shape (%s)" % (path, type(e).__name__),
                           "check it with `kubectl config view`") from None
    _strip_token(cfg)
    if not cfg.verify_ssl:
        # urllib3 warns on every request; kubectl says nothing per request.  One line, once.
        import warnings

        import urllib3

        warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
        print("warning: insecure-skip-tls-verify is set: the API server's certificate is not verified",
              file=sys.stderr)
    cfg.retries = _read_retry(timeout)  # read by the client when it builds its connection pool
    api = client.ApiClient(cfg)
    _mark("config", start)
    return api, namespace


def _client_log_handler():
    import logging

    class Handler(logging.Handler):
        """Where the client's own log records go (kube_config logs a failed exec plugin or a
        malformed entry with logging.error, naming the entry by its whole dict -- a password
        or key included).  One scrubbed, bounded `warning:` line each, on stderr."""

        virtio = True

        def emit(self, record) -> None:
            try:
                text = record.getMessage()
            except Exception:  # noqa: BLE001 - a malformed record: say nothing rather than crash
                return
            sys.stderr.write("warning: kubeconfig: %s\n" % _short(_scrub_config_text(text)))

    return Handler(logging.WARNING)


def _route_client_log() -> None:
    import logging

    root = logging.getLogger()
    if not any(getattr(h, "virtio", False) for h in root.handlers):
        root.addHandler(_client_log_handler())


def _scrub_config_text(text: str) -> str:
    """A kubeconfig loader message without the entries it quotes: the client names a node by
    the repr of its whole parent dict (`.../{'name': 'u', 'user': {...}}/user/exec`)."""
    text = re.sub(r"\{.*\}", "{...}", text, flags=re.S)
    return _scrub(re.sub(r"\[.*\]", "[...]", text, flags=re.S))


def _strip_token(cfg) -> None:
    """A token ending in a newline (a tokenFile written by `echo`, a YAML block scalar) is
    trimmed, as kubectl does (client-go transport: strings.TrimSpace on the token); a
    refresh hook (exec plugins, in-cluster token rotation) gets the same treatment."""
    def strip() -> None:
        for key, value in list((cfg.api_key or {}).items()):
            if isinstance(value, str) and value != value.strip():
                cfg.api_key[key] = value.strip()

    strip()
    hook = cfg.refresh_api_key_hook
    if hook is not None:
        def refresh(conf):
            hook(conf)
            strip()

        cfg.refresh_api_key_hook = refresh


def _read_retry(timeout: float):
    """urllib3's own Retry for idempotent reads: GET only, on 429 and 503, Retry-After
    honoured but capped, exponential backoff otherwise; nothing else is retried (a refused
    connection or a timeout fails at once, so a timeout is never silently multiplied, and a
    write whose outcome is unknown is never repeated)."""
    from urllib3.util.retry import Retry

    cap = max(1, int(min(RETRY_AFTER_MAX, timeout)))
    return Retry(total=READ_RETRIES, connect=0, read=0, redirect=0, other=0, status=READ_RETRIES,
                 status_forcelist=(429, 503), allowed_methods=frozenset({"GET"}), backoff_factor=0.5,
                 backoff_max=cap, retry_after_max=cap, respect_retry_after_header=True, raise_on_status=False)


_SECRET_SHAPES = (re.compile(r"(?i)\b(bearer|basic)\s+\S+"),
                  re.compile(r"-----BEGIN [A-Z ]+-----.*?(-----END [A-Z ]+-----|$)", re.S),
                  re.compile(r"(?i)(\"?(token|password|client-key-data|client-key|id-token|refresh-token|"
                             r"access-token)\"?\s*[:=]\s*)\S+"))


def _scrub(text: str, secrets=()) -> str:
    """`text` with the given secret values and anything shaped like a credential (an
    Authorization value, a PEM block, `token: ...`) replaced by [redacted]."""
    for s in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(s, "[redacted]")
    text = _SECRET_SHAPES[0].sub(lambda m: m.group(1) + " [redacted]", text)
    text = _SECRET_SHAPES[1].sub("[redacted]", text)
    return _SECRET_SHAPES[2].sub(lambda m: m.group(1) + "[redacted]", text)


def _quote(segment: str) -> str:
    """One URL path segment, percent-quoted with nothing left safe: '/', '?', '#', '..'
    or '%' in a namespace or name cannot reach another path or the query."""
    text = quote(str(segment), safe="")
    return text if text not in (".", "..") else text.replace(".", "%2E")


_LOG_LOCK = threading.Lock()


class Cluster:
    def __init__(self, kubeconfig=None, context=None, namespace=None, request_timeout=None, debug=None):
        """`request_timeout` (seconds; None/0 = the defaults) bounds each REST request and
        each exec; `debug` (default: $KUBECTL_VIRTIO_DEBUG) logs each request on stderr."""
        self.timeout = float(request_timeout or REQUEST_TIMEOUT)
        self.api, default_ns = _load_client(kubeconfig, context, self.timeout)
        self.namespace = namespace or default_ns
        self.exec_timeout = float(request_timeout or EXEC_TIMEOUT)
        self.debug = bool(os.environ.get("KUBECTL_VIRTIO_DEBUG")) if debug is None else bool(debug)
        self.server = self.api.configuration.host
        self._sslopt: Optional[Dict[str, Any]] = None  # the exec WebSocket's TLS options, built once
        self._sslopt_lock = threading.Lock()
        self._auth: Optional[Tuple[float, Optional[str]]] = None  # (when, header): _auth_header

    # -- plumbing -----------------------------------------------------------------------
    def _secrets(self) -> List[str]:
        """Credential values this client sends, to keep them out of every message."""
        cfg = self.api.configuration
        found = []
        for value in list((cfg.api_key or {}).values()) + [cfg.password]:
            if isinstance(value, str) and value:
                found.append(value)
                found.extend(value.split()[1:])  # the token of "Bearer <token>"
        return found

    def _log(self, method: str, path: str, status: Any, start: float) -> None:
        if self.debug:  # one write a line: parallel reads must not interleave
            line = "kubectl-virtio: %s %s -> %s (%.0f ms)\n" % (method, path, status,
                                                               (time.perf_counter() - start) * 1000)
            with _LOG_LOCK:
                sys.stderr.write(line)
                sys.stderr.flush()

    def _call(self, method: str, path: str, *, query=None, body=None, content_type=None,
              what: Tuple[str, str, str, Optional[str], Optional[str]] = ("", "", "", None, None)) -> Any:
        """One REST call through the client's generic request path (param_serialize for URL
        and auth, call_api for the transport), raw JSON in and out. `what` = (verb, group,
        resource, namespace, name) for error messages.  The whole call -- connect, TLS,
        headers, body -- ends by the deadline: a watchdog shuts the response down when the
        body is still arriving then."""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        start = time.perf_counter()
        deadline = time.monotonic() + self.timeout
        status: Any = "-"
        try:
            try:
                req = self.api.param_serialize(method, path, query_params=list(query or []), header_params=headers,
                                               body=body, auth_settings=["BearerToken"])
                _strip_headers(req[2])
                resp = self.api.call_api(*req, _request_timeout=self.timeout)
                status = resp.status
                data = self._read_body(resp.response, deadline, what)
            except ClusterError:
                raise
            except Exception as e:  # urllib3 and the client's transport errors: refused, TLS, timeout, DNS
                raise self._transport_error(e, what) from None
        finally:
            _mark("api", start)
            self._log(method, path, status, start)
        if not 200 <= resp.status < 300:
            raise self._api_error(_Failed(resp.status, data, getattr(resp, "reason", ""),
                                          resp.getheader("Content-Type") or ""), what)
        if not data:
            return {}
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            doc = None
        if not isinstance(doc, dict):
            kind = "HTML" if data.lstrip()[:1] == b"<" else "not a JSON object (truncated or malformed)"
            raise BadResponse("the API server %s answered %s with %s" % (self.server, _request_text(what), kind),
                              "is the kubeconfig's server URL the API server (not a proxy or a login page)?")
        return doc

    def _read_body(self, raw, deadline: float, what) -> bytes:
        """The body, read by pieces until the deadline; a watchdog cuts a read that is
        waiting when the deadline passes (urllib3's read timeout is per socket read, so a
        body trickling in a byte at a time would never trip it)."""
        watchdog = _Watchdog(deadline, raw.shutdown)
        expired = watchdog.expired
        parts = []
        try:
            while True:
                try:
                    piece = raw.read1(65536)
                except Exception:
                    if expired.is_set():
                        break
                    raise
                if not piece or expired.is_set():
                    break
                parts.append(piece)
        finally:
            watchdog.cancel()
            raw.release_conn() if not expired.is_set() else raw.close()
        if expired.is_set():
            raise Timeout("the API server %s did not finish answering %s within %gs" % (
                self.server, _request_text(what), self.timeout),
                "raise --request-timeout, or check the API server and the network")
        return b"".join(parts)

    def _api_error(self, e, what) -> ClusterError:
        verb, group, resource, ns, name = what
        status: Dict[str, Any] = {}
        try:
            status = json.loads(e.body) if e.body else {}
            status = status if isinstance(status, dict) else {}
        except (ValueError, TypeError, RecursionError):
            pass
        message = status.get("message") or e.reason or ""
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        message = _short(_scrub(str(message), self._secrets()))
        full = "%s.%s" % (resource, group) if group else resource
        where = " in namespace %s" % ns if ns else ""
        if e.status == 0:
            return self._transport_error(e, what)
        if e.status == 401:
            return ClusterError("the API server %s rejected the credentials (401 Unauthorized)" % self.server,
                                "log in again or check the user of the current context in the kubeconfig")
        if e.status == 403:
            if resource == "pods/exec":
                # A WebSocket exec is a GET: authorized as `get pods/exec` before Kubernetes
                # 1.35, as `get` and `create` from 1.35 on (feature gate
                # AuthorizePodWebsocketUpgradeCreatePermission); docs/cluster.md "RBAC".
                return Forbidden("forbidden: %s" % message,
                                 "ask for RBAC permission to get and create pods/exec%s (a WebSocket exec is "
                                 "authorized as get before Kubernetes 1.35, as both from 1.35 on)" % where)
            return Forbidden("forbidden: %s" % message, "ask for RBAC permission to %s %s%s" % (verb, full, where))
        if e.status == 404:
            details = status.get("details") if isinstance(status.get("details"), dict) else {}
            about_object = status.get("kind") == "Status" and status.get("reason") == "NotFound" and (
                not name or details.get("name") == name)
            if not about_object:
                return self._not_served(what)
            return NotFound(message or "%s %s not found" % (full, name))
        if e.status == 409:
            return Conflict(message or "conflict")
        if e.status in (429, 503):
            return ClusterError("the API server %s is overloaded or unavailable (HTTP %s) for %s, also after %d "
                                "retries: %s" % (self.server, e.status, _request_text(what), READ_RETRIES
                                                 if verb in ("get", "list") else 0, message),
                                "try again later")
        if not status:
            message = "%s%s" % (e.reason or "", " (%s)" % e.content_type.split(";")[0] if e.content_type else "")
        return ClusterError("%s %s%s: %s (HTTP %s)" % (verb, full, " " + name if name else "", message, e.status))

    def _not_served(self, what) -> ClusterError:
        verb, group, resource, ns, name = what
        if group in (KUBEVIRT[0], SUBRESOURCES[0]):
            return NotServed("the API server %s does not serve KubeVirt's API (%s/%s): is KubeVirt installed? is "
                             "this the right context?" % (self.server, KUBEVIRT[0], KUBEVIRT[1]),
                             "`kubectl api-resources --api-group=kubevirt.io` lists what it serves; "
                             "`kubectl config current-context` shows the context")
        api = "%s/%s" % (group, INSTANCETYPE[1]) if group == INSTANCETYPE[0] else (group or "v1")
        return NotServed("the API server %s does not serve %s (%s): is KubeVirt (with instance types) installed, "
                         "and is this the right context?" % (self.server, resource, api),
                         "`kubectl api-resources --api-group=%s` lists what it serves" % group)

    def _transport_error(self, e, what=None, timeout=None) -> ClusterError:
        text = _scrub(str(getattr(e, "reason", None) or e), self._secrets())
        low = text.lower()
        if "certificate" in low or "ssl" in low or "tls" in low:
            if "timed out" not in low:
                return ClusterError("TLS verification of %s failed: %s" % (self.server, _short(text)),
                                    "check certificate-authority(-data) of the cluster in the kubeconfig")
        if "refused" in low:
            return ClusterError("cannot connect to the API server %s: connection refused" % self.server,
                                "is the cluster up, and is the current context the right one?")
        if "timed out" in low or "timeout" in low:
            return Timeout("the API server %s did not answer %s within %gs" % (
                self.server, _request_text(what), timeout or self.timeout or 0),
                "raise --request-timeout, or check the API server and the network")
        return ClusterError("cannot reach the API server %s: %s" % (self.server, _short(text)))

    # -- reads --------------------------------------------------------------------------
    def _kv_path(self, ns, plural, name=None, group=KUBEVIRT):
        base = "/apis/%s/%s" % group + ("/namespaces/%s" % _quote(ns) if ns else "") + "/" + plural
        return base + ("/" + _quote(name) if name else "")

    def get_vm(self, ns: str, name: str) -> Optional[Dict[str, Any]]:
        return self._get_optional(self._kv_path(ns, "virtualmachines", name),
                                  ("get", "kubevirt.io", "virtualmachines", ns, name))

    def get_vmi(self, ns: str, name: str) -> Optional[Dict[str, Any]]:
        return self._get_optional(self._kv_path(ns, "virtualmachineinstances", name),
                                  ("get", "kubevirt.io", "virtualmachineinstances", ns, name))

    def _get_optional(self, path, what):
        try:
            return self._call("GET", path, what=what)
        except NotFound:
            return None

    def get_controller_revision(self, ns: str, name: str):
        return self._get_optional("/apis/apps/v1/namespaces/%s/controllerrevisions/%s" % (_quote(ns), _quote(name)),
                                  ("get", "apps", "controllerrevisions", ns, name))

    def get_preference(self, ns: str, name: str, cluster_scoped: bool):
        plural = "virtualmachineclusterpreferences" if cluster_scoped else "virtualmachinepreferences"
        return self._get_optional(self._kv_path(None if cluster_scoped else ns, plural, name, INSTANCETYPE),
                                  ("get", INSTANCETYPE[0], plural, None if cluster_scoped else ns, name))

    def _items(self, doc, what) -> List[Dict[str, Any]]:
        items = doc.get("items")
        if items is None:
            return []
        if not isinstance(items, list):
            raise BadResponse("the API server %s answered %s with a list whose items are not a list"
                              % (self.server, _request_text(what)))
        return items

    def list_vms(self, ns: Optional[str], selector: Optional[str] = None) -> List[Dict[str, Any]]:
        query = [("labelSelector", selector)] if selector else []
        what = ("list", "kubevirt.io", "virtualmachines", ns, None)
        return self._items(self._call("GET", self._kv_path(ns, "virtualmachines"), query=query, what=what), what)

    def list_vmis(self, ns: Optional[str], selector: Optional[str] = None) -> List[Dict[str, Any]]:
        query = [("labelSelector", selector)] if selector else []
        what = ("list", "kubevirt.io", "virtualmachineinstances", ns, None)
        return self._items(self._call("GET", self._kv_path(ns, "virtualmachineinstances"), query=query, what=what),
                           what)

    def list_launcher_pods(self, ns: str, vmi_uid: str) -> List[Dict[str, Any]]:
        # The labels KubeVirt itself selects launcher pods by (tests/libpod GetPodByVirtualMachineInstance).
        selector = "kubevirt.io=virt-launcher,kubevirt.io/created-by=%s" % vmi_uid
        what = ("list", "", "pods", ns, None)
        return self._items(self._call("GET", "/api/v1/namespaces/%s/pods" % _quote(ns),
                                      query=[("labelSelector", selector)], what=what), what)

    def parallel(self, *calls):
        """Run independent reads at once (the client's connection pool is thread-safe).

        Every call runs in a daemon thread and the caller's thread only waits, in short
        timed joins: Ctrl-C stops the command at once (the reads still in flight are
        abandoned), and no wait is unbounded beyond the requests' own timeouts."""
        calls = [c for c in calls if c is not None]
        if len(calls) <= 1:
            return [c() for c in calls]
        results: List[Any] = [None] * len(calls)
        errors: List[Optional[BaseException]] = [None] * len(calls)

        def run(i):
            try:
                results[i] = calls[i]()
            except Exception as e:  # noqa: BLE001 - re-raised in the caller's thread
                errors[i] = e

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.1)
        for e in errors:
            if e is not None:
                raise e
        return results

    # -- what completion and release detection read ------------------------------------
    def list_namespaces(self) -> List[str]:
        items = self._call("GET", "/api/v1/namespaces", what=("list", "", "namespaces", None, None)).get("items")
        return [n for n in ((i.get("metadata") or {}).get("name") for i in items or [] if isinstance(i, dict)) if n]

    def kubevirt_version(self) -> Optional[str]:
        """status.observedKubeVirtVersion of the cluster's KubeVirt CR (kubevirt.io/v1 kubevirts;
        staging/src/kubevirt.io/api/core/v1/types.go KubeVirtStatus).  None when there is none,
        the user may not list it (403: a namespace user) or the API is not served (404)."""
        try:
            data = self._call("GET", self._kv_path(None, "kubevirts"), query=[("limit", "5")],
                              what=("list", "kubevirt.io", "kubevirts", None, None))
        except (Forbidden, NotFound):
            return None
        for item in data.get("items") or []:
            v = ((item or {}).get("status") or {}).get("observedKubeVirtVersion")
            if isinstance(v, str) and v:
                return v
        return None

    # -- exec ---------------------------------------------------------------------------
    def exec(self, ns: str, pod: str, container: str, argv: List[str], timeout: Optional[float] = None) -> ExecResult:
        """Run argv (never a shell string) in a container over a WebSocket (v5 and v4 channel
        protocols offered) and read the frames here, as bytes: stdout (1) and stderr (2) are
        kept apart and decoded once at the end (a UTF-8 character split across frames
        survives), the status (3) is read and mapped (docs/cluster.md "Exec").  `timeout`
        (default: --request-timeout, else EXEC_TIMEOUT) bounds the handshake and the command
        together; the output is capped at EXEC_OUTPUT_CAP.  A non-zero exit is a result; a
        kubelet failure, a stream without a status or an overrun is an ExecError/Timeout."""
        timeout = timeout or self.exec_timeout
        what = ("create", "", "pods/exec", ns, pod)
        path = "/api/v1/namespaces/%s/pods/%s/exec" % (_quote(ns), _quote(pod))
        target = "%s?%s&container=%s&stderr=true&stdin=false&stdout=true&tty=false" % (
            path, "&".join("command=" + quote(a, safe="") for a in argv), quote(container, safe=""))
        start = time.perf_counter()
        deadline = time.monotonic() + timeout
        # One deadline for the whole exec -- connect, TLS, the upgrade, every frame: the
        # watchdog shuts down whichever socket the exec is on when it passes.
        cut = _SocketCut()
        watchdog = _Watchdog(deadline, cut)
        status: Any = "-"
        command = " ".join(argv)
        try:
            try:
                stream = self._exec_connect(target, deadline, cut)
            except _Refused as e:
                status = e.status
                raise self._api_error(_Failed(e.status, e.body, "HTTP %d" % e.status), what) from None
            except ClusterError:
                raise
            except Exception as e:  # noqa: BLE001 - connect, TLS, the upgrade: mapped below
                if watchdog.expired.is_set() or time.monotonic() >= deadline or isinstance(e, _Overrun):
                    raise Timeout("the API server %s did not complete the exec WebSocket handshake (create "
                                  "pods/exec for pod %s in namespace %s) within %gs" % (self.server, pod, ns, timeout),
                                  "raise --request-timeout, or check the API server and the kubelet of the pod's "
                                  "node") from None
                from kubernetes.client.exceptions import ApiException

                # as the client's websocket_call wraps what websocket-client raises (the proxied path)
                e = e if isinstance(e, ApiException) else ApiException(status=0, reason=str(e))
                m = re.search(r"Handshake status (\d{3})", str(e.reason or ""))
                status = m.group(1) if m else "-"
                raise self._exec_error(e, what, timeout) from None
            status = 101
            try:
                out, err, st = self._read_exec(stream, deadline, watchdog,
                                               "`%s` in pod %s (container %s)" % (command, pod, container))
            except _Overrun:
                raise Timeout("`%s` in pod %s (container %s) did not finish within %gs" % (command, pod, container,
                                                                                          timeout),
                              "raise --request-timeout, or check the pod: `kubectl describe pod %s -n %s`"
                              % (pod, ns)) from None
            finally:
                stream.close()
        finally:
            watchdog.cancel()
            _mark("exec", start)
            self._log("GET", path, status, start)
        if st is None:
            raise ExecError("the exec stream ended before virsh finished: `%s` in pod %s (container %s) sent no "
                            "exit status" % (command, pod, container),
                            "try again; if it persists, check the API server and the kubelet of the pod's node")
        return ExecResult(returncode=self._exit_code(st, command, pod, container, ns),
                          stdout=out.decode("utf-8", "replace"), stderr=err.decode("utf-8", "replace"))

    def _auth_header(self) -> Optional[str]:
        """The Authorization header the client sends (its auth_settings: the kubeconfig's token
        or basic auth, refreshed by its hook when an exec plugin's token expired), asked of the
        client at most once every AUTH_REUSE seconds: its hook sets the whole configuration
        again on every call, host and environment proxy included, which cost a fifth of an
        exec's Python time under `list --live`."""
        now = time.monotonic()
        cached = self._auth
        if cached is not None and now - cached[0] < AUTH_REUSE:
            return cached[1]
        auth = (self.api.configuration.auth_settings() or {}).get("BearerToken") or {}
        value = str(auth.get("value") or "").strip()
        if "\r" in value or "\n" in value:
            raise ClusterError("the credentials of the kubeconfig's user contain a line break",
                               "check the token of the current context's user in the kubeconfig")
        self._auth = (now, value or None)
        return value or None

    def _exec_connect(self, target: str, deadline: float, cut: "_SocketCut"):
        """The exec's WebSocket, upgraded (RFC 6455 section 4) and ready to read, as the
        client's create_websocket asks for it (kubernetes/stream/ws_client.py: the
        Authorization header, v5 and v4 offered, the kubeconfig's proxy), with this Cluster's
        one TLS context.

        Without a proxy, the TCP connection, the TLS handshake and the upgrade are made here
        (docs/cluster.md "Exec": one deadline cuts every step, and reads are buffered).  Through a proxy (the kubeconfig's proxy-url, or the
        https_proxy/http_proxy variables websocket-client reads itself) websocket-client
        connects, tunnels, wraps and upgrades; it takes no overall deadline, so it runs in a
        daemon thread that is abandoned when the deadline passes."""
        cfg = self.api.configuration
        base = cfg.host.rstrip("/")
        secure = base.startswith("https://")
        auth = self._auth_header()
        remaining = max(0.001, deadline - time.monotonic())
        proxy_vars = ("https_proxy", "HTTPS_PROXY") if secure else ("http_proxy", "HTTP_PROXY")
        if cfg.proxy or cfg.proxy_headers or any(os.environ.get(v) for v in proxy_vars):
            return self._exec_connect_proxied(base + target, auth, remaining, cut)
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(base)
        host, port = parts.hostname or "", parts.port or (443 if secure else 80)
        sock = socket.create_connection((host, port), timeout=remaining)
        try:
            cut.on(sock)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if secure:
                sslopt = self._exec_sslopt()
                sock = sslopt["context"].wrap_socket(sock, server_hostname=sslopt.get("server_hostname") or host,
                                                     do_handshake_on_connect=False, suppress_ragged_eofs=True)
                cut.on(sock)
                sock.do_handshake()
            stream = _ExecStream.upgrade(sock, (parts.path or "") + target, parts.netloc.rpartition("@")[2], auth,
                                         (EXEC_V5, EXEC_V4))
        except BaseException:
            sock.close()
            raise
        return stream

    def _exec_connect_proxied(self, url: str, auth: Optional[str], remaining: float, cut: "_SocketCut"):
        from kubernetes.stream.ws_client import get_websocket_url, websocket_proxycare
        from websocket import WebSocket

        ws_url = get_websocket_url(url)
        header = ["sec-websocket-protocol: %s,%s" % (EXEC_V5, EXEC_V4)]
        if auth:
            header.insert(0, "authorization: %s" % auth)
        ws = WebSocket(sslopt=self._exec_sslopt() if ws_url.startswith("wss://") else {}, skip_utf8_validation=True)
        opts = websocket_proxycare({"header": header}, self.api.configuration, ws_url,
                                   {"authorization": auth} if auth else {})
        box: Dict[str, Any] = {}

        def connect():
            try:
                ws.connect(ws_url, timeout=remaining, **opts)
                box["ws"] = ws
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                box["error"] = e

        worker = threading.Thread(target=connect, name="exec-handshake", daemon=True)
        worker.start()
        worker.join(remaining)
        if worker.is_alive():
            raise _Overrun()
        if "error" in box:
            raise box["error"]
        cut.on(ws.sock)
        return _ClientStream(ws)

    def _exec_sslopt(self) -> Dict[str, Any]:
        """TLS options for every exec of this Cluster: one SSLContext, built on first use from
        the kubeconfig exactly as the client's create_websocket asks websocket-client to build
        one per connection (ws_client.py; websocket/_http.py `_wrap_sni_socket`): the
        cluster's CA (else certifi's bundle) with the certificate and the host name checked,
        or nothing checked under insecure-skip-tls-verify; the client certificate and key;
        tls-server-name as the name sent and checked.  Reading the CA bundle and building a
        context cost more client CPU than the handshake itself (docs/cluster.md "Exec")."""
        with self._sslopt_lock:
            if self._sslopt is None:
                import ssl

                cfg = self.api.configuration
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                if cfg.verify_ssl:
                    cafile = cfg.ssl_ca_cert
                    if not cafile:  # certifi (and importlib.resources) only when the kubeconfig has no CA
                        import certifi

                        cafile = certifi.where()
                    ctx.load_verify_locations(cafile=cafile)
                    ctx.check_hostname = True if cfg.assert_hostname is None else bool(cfg.assert_hostname)
                    ctx.verify_mode = ssl.CERT_REQUIRED
                else:
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                if cfg.cert_file:
                    ctx.load_cert_chain(cfg.cert_file, cfg.key_file or None)
                opt: Dict[str, Any] = {"context": ctx}
                if cfg.tls_server_name:
                    opt["server_hostname"] = cfg.tls_server_name
                self._sslopt = opt
            return self._sslopt

    def _read_exec(self, stream, deadline: float, watchdog: "_Watchdog", what: str):
        """(stdout bytes, stderr bytes, status bytes or None) from the exec's messages.  Each
        is <channel byte><data>; channel 255 with one byte (v5 only) closes a channel.  The
        exec's watchdog shuts the socket at the deadline, so a frame that trickles in is cut
        too; a frame longer than the output cap is refused before it is read."""
        v5 = stream.subprotocol == EXEC_V5
        out, err, st = bytearray(), bytearray(), None
        expired = watchdog.expired
        too_much = "%s wrote more than %d MiB: stopped (a domain XML is a few hundred KiB)" % (
            what, EXEC_OUTPUT_CAP // (1024 * 1024))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Overrun()
            # After the status only a close is expected: wait briefly for trailing frames.
            stream.settimeout(min(remaining, 2.0) if st is not None else remaining)
            try:
                opcode, data = stream.message(EXEC_OUTPUT_CAP + EXEC_STATUS_CAP + 1 - len(out) - len(err))
            except _TooLarge:
                raise ExecError(too_much) from None
            except (OSError, ValueError, EOFError):
                if expired.is_set() or (st is None and time.monotonic() >= deadline):
                    raise _Overrun() from None
                break  # the connection ended (with or without a status: the caller decides)
            if opcode == _OP_CLOSE:
                break
            if opcode not in (_OP_TEXT, _OP_BINARY) or not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == 255 and v5:
                continue  # CLOSE of one channel (data[1]); the status or the socket close ends us
            if channel in (1, 2):
                (out if channel == 1 else err).extend(payload)
                if len(out) + len(err) > EXEC_OUTPUT_CAP:
                    raise ExecError(too_much)
            elif channel == 3:
                st = (st or b"") + payload
                if len(st) > EXEC_STATUS_CAP:
                    raise ExecError("%s: the exec status is larger than %d KiB: not a Status"
                                    % (what, EXEC_STATUS_CAP // 1024))
        return bytes(out), bytes(err), st

    def _exit_code(self, raw: bytes, command: str, pod: str, container: str, ns: str) -> int:
        """The exec status (a metav1.Status on channel 3; kubelet cri streaming, see
        docs/cluster.md "Exec"): Success -> 0; NonZeroExitCode -> the ExitCode cause; any
        other reason (InternalError: no virsh in the image, an OCI runtime error) -> ExecError
        with the kubelet's message."""
        try:
            status = json.loads(raw.decode("utf-8", "replace"))
        except (ValueError, RecursionError):
            status = None
        if not isinstance(status, dict):
            raise ExecError("`%s` in pod %s (container %s): the exec status is not a Status object" % (
                command, pod, container))
        if status.get("status") == "Success":
            return 0
        reason = status.get("reason")
        details = status.get("details") if isinstance(status.get("details"), dict) else {}
        causes = details.get("causes") if isinstance(details.get("causes"), list) else []
        if reason == "NonZeroExitCode":
            for cause in causes:
                if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
                    try:
                        return int(str(cause.get("message")).strip())
                    except ValueError:
                        break
        message = _short(_scrub(str(status.get("message") or reason or "unknown failure"), self._secrets()))
        raise ExecError("the kubelet could not run `%s` in pod %s (container %s): %s" % (
            command, pod, container, message),
            "check the pod's compute container: `kubectl describe pod %s -n %s`" % (pod, ns))

    def _exec_error(self, e, what, timeout=None) -> ClusterError:
        # A refused WebSocket handshake arrives as status 0, the HTTP answer in `reason`:
        # "Handshake status 403 Forbidden -+-+- {headers} -+-+- {status json}" (websocket-client
        # puts the body last; older releases as a bytes literal b'...').
        text = str(e.reason or "")
        m = re.search(r"Handshake status (\d{3})", text)
        if m:
            return self._api_error(_Failed(int(m.group(1)), _handshake_body(text), "HTTP " + m.group(1)), what)
        return self._transport_error(e, what, timeout)

    # -- writes -------------------------------------------------------------------------
    def patch_vm(self, ns: str, name: str, patch: Dict[str, Any], dry_run: bool = False) -> Dict[str, Any]:
        query = [("dryRun", "All")] if dry_run else []
        return self._call("PATCH", self._kv_path(ns, "virtualmachines", name), query=query, body=patch,
                          content_type="application/merge-patch+json",
                          what=("patch", "kubevirt.io", "virtualmachines", ns, name))

    def restart_vm(self, ns: str, name: str, dry_run: bool = False) -> None:
        body: Dict[str, Any] = {"dryRun": ["All"]} if dry_run else {}
        self._call("PUT", self._kv_path(ns, "virtualmachines", name, SUBRESOURCES) + "/restart", body=body,
                   content_type="application/json",
                   what=("update", "subresources.kubevirt.io", "virtualmachines/restart", ns, name))

    # -- paged LIST (fleet commands) ----------------------------------------------------
    LIST_KINDS = {"vms": (KUBEVIRT, "virtualmachines"), "vmis": (KUBEVIRT, "virtualmachineinstances"),
                  "pods": (None, "pods")}

    def iter_list(self, kind: str, ns: Optional[str] = None, selector: Optional[str] = None,
                  limit: int = 500):
        """Yield the items of a LIST a page at a time (`limit`/`continue`, as kubectl's
        --chunk-size), the selector applied by the server.  Only one page is held: each page's
        JSON is parsed alone and dropped once the caller has moved on.  kind: vms|vmis|pods;
        ns None = all namespaces.  An expired continue token (410: the list changed too much
        while it was read) ends with a ClusterError: a list stitched from two snapshots would
        be wrong, so like kubectl it does not silently start over."""
        group, plural = self.LIST_KINDS[kind]
        path = (self._kv_path(ns, plural) if group else
                "/api/v1" + ("/namespaces/%s" % ns if ns else "") + "/" + plural)
        what = ("list", group[0] if group else "", plural, ns, None)
        token = None
        while True:
            query = [("limit", str(limit))] if limit else []
            if selector:
                query.append(("labelSelector", selector))
            if token:
                query.append(("continue", token))
            try:
                page = self._call("GET", path, query=query, what=what)
            except ClusterError as e:
                if token and ("(HTTP 410)" in e.message or "continue parameter is too old" in e.message):
                    raise ClusterError("the list of %s expired while it was read page by page (it changed too "
                                       "much meanwhile)" % plural, "run the command again") from None
                raise
            items = page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            page = None
            yield items
            if not token:
                return


# --- The exec's WebSocket ---------------------------------------------------------------------

_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0, 1, 2, 8, 9, 10  # RFC 6455 section 5.2
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3, for Sec-WebSocket-Accept
HANDSHAKE_CAP = 64 * 1024  # the upgrade answer's status line and headers
REFUSAL_CAP = 1024 * 1024  # the body of a refused upgrade (a metav1.Status)


class _Refused(Exception):
    """The API server answered the upgrade with something else than 101 (its Status body)."""

    def __init__(self, status: int, body: str):
        super().__init__("HTTP %d" % status)
        self.status, self.body = status, body


class _TooLarge(Exception):
    """A message longer than the exec may still read (the caller's cap)."""


class _ExecStream:
    """The client end of the exec's WebSocket, for what an exec needs of RFC 6455: the upgrade
    (section 4.1), then messages read whole from unmasked server frames (fragments joined,
    control frames between them answered or skipped), and a masked close.  Reads go through
    one buffer: websocket-client reads the upgrade answer a byte a call and every frame in
    several, which cost about a millisecond of CPU an exec (docs/cluster.md "Exec")."""

    __slots__ = ("sock", "subprotocol", "_buf", "_pos")

    def __init__(self, sock, subprotocol: str, buffered: bytes):
        self.sock, self.subprotocol = sock, subprotocol
        self._buf, self._pos = buffered, 0

    @classmethod
    def upgrade(cls, sock, target: str, host: str, auth: Optional[str], protocols: Tuple[str, ...]) -> "_ExecStream":
        import base64
        import hashlib

        key = base64.b64encode(os.urandom(16))
        lines = ["GET %s HTTP/1.1" % target, "Host: %s" % host, "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Key: %s" % key.decode(), "Sec-WebSocket-Version: 13",
                 "Sec-WebSocket-Protocol: %s" % ",".join(protocols)]
        if auth:
            lines.append("Authorization: %s" % auth)
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
        data = b""
        while True:
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(data) > HANDSHAKE_CAP:
                raise ValueError("the answer to the exec's WebSocket upgrade has more than %d KiB of headers"
                                 % (HANDSHAKE_CAP // 1024))
            chunk = sock.recv(16384)
            if not chunk:
                raise EOFError("the connection closed during the exec's WebSocket upgrade")
            data += chunk
        head, rest = data[:end].decode("latin-1").split("\r\n"), data[end + 4:]
        fields = head[0].split(" ", 2)
        if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
            raise ValueError("the answer to the exec's WebSocket upgrade is not HTTP: %r" % head[0][:80])
        headers: Dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            headers[name] = (headers[name] + ", " if name in headers else "") + value.strip()
        status = int(fields[1])
        if status != 101:
            raise _Refused(status, _refusal_body(sock, headers, rest))
        accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest()).decode()
        chosen = headers.get("sec-websocket-protocol", "")
        if headers.get("upgrade", "").lower() != "websocket" or headers.get("sec-websocket-accept") != accept:
            raise ValueError("the answer to the exec's WebSocket upgrade is not a WebSocket handshake")
        if chosen not in protocols:
            raise ValueError("the API server chose the exec protocol %r, not one offered (%s)"
                             % (chosen[:80], ", ".join(protocols)))
        return cls(sock, chosen, rest)

    def settimeout(self, seconds: float) -> None:
        self.sock.settimeout(seconds)

    def _take(self, n: int) -> bytes:
        buf, pos = self._buf, self._pos
        end = pos + n
        if end <= len(buf):
            self._pos = end
            return buf[pos:end]
        parts, have = [buf[pos:]], len(buf) - pos
        while have < n:
            chunk = self.sock.recv(max(16384, min(n - have, 1 << 20)))
            if not chunk:
                raise EOFError("the exec's connection closed")
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        self._buf, self._pos = data, n
        return data[:n]

    def message(self, limit: int) -> Tuple[int, bytes]:
        """(opcode, payload) of the next text, binary or close message; at most `limit` bytes
        of data are read (_TooLarge before a longer frame is read)."""
        parts: Optional[List[bytes]] = None
        first, size = _OP_BINARY, 0
        while True:
            b0, b1 = self._take(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if b0 & 0x70 or b1 & 0x80:
                raise ValueError("a WebSocket frame with reserved bits or a mask from the server")
            if n == 126:
                n = int.from_bytes(self._take(2), "big")
            elif n == 127:
                n = int.from_bytes(self._take(8), "big")
            if opcode >= 8:  # control frames: short, whole, possibly between fragments
                if n > 125 or not b0 & 0x80:
                    raise ValueError("a malformed WebSocket control frame")
                payload = self._take(n)
                if opcode == _OP_CLOSE:
                    return opcode, payload
                if opcode == _OP_PING:
                    self._send(_OP_PONG, payload)
                continue
            if size + n > limit:
                raise _TooLarge()
            payload = self._take(n)
            if opcode == _OP_CONT:
                if parts is None:
                    raise ValueError("a WebSocket continuation frame without a message")
                parts.append(payload)
            elif parts is not None:
                raise ValueError("a new WebSocket message inside a fragmented one")
            else:
                first, parts = opcode, [payload]
            size += n
            if b0 & 0x80:
                return first, parts[0] if len(parts) == 1 else b"".join(parts)

    def _send(self, opcode: int, payload: bytes) -> None:
        """One masked frame (a client's frames are masked, RFC 6455 section 5.3); control only."""
        mask = os.urandom(4)
        key = int.from_bytes((mask * (len(payload) // 4 + 1))[:len(payload)], "big") if payload else 0
        body = (int.from_bytes(payload, "big") ^ key).to_bytes(len(payload), "big") if payload else b""
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body)

    def close(self) -> None:
        """Send a normal close (1000) and drop the connection, not waiting for the server's."""
        try:
            self.sock.settimeout(0.2)
            self._send(_OP_CLOSE, b"\x03\xe8")
        except (OSError, ValueError):
            pass
        try:
            self.sock.close()
        except OSError:
            pass


class _ClientStream:
    """websocket-client's WebSocket (the proxied exec) as _read_exec reads an _ExecStream."""

    __slots__ = ("ws", "subprotocol")

    def __init__(self, ws):
        self.ws = ws
        self.subprotocol = _subprotocol(ws)

    def settimeout(self, seconds: float) -> None:
        self.ws.settimeout(seconds)

    def message(self, limit: int) -> Tuple[int, bytes]:
        from websocket import WebSocketException

        try:
            opcode, frame = self.ws.recv_data_frame(True)
        except WebSocketException as e:
            raise EOFError(str(e)) from None
        data = frame.data if isinstance(frame.data, (bytes, bytearray)) else str(frame.data).encode()
        if len(data) > limit:
            raise _TooLarge()
        return opcode, bytes(data)

    def close(self) -> None:
        try:
            self.ws.close(timeout=0)
        except Exception:  # noqa: BLE001 - the socket may be gone already
            pass


def _refusal_body(sock, headers: Dict[str, str], rest: bytes) -> str:
    """The body of a refused upgrade, for the Status in it (RFC 9112 section 6.3: by
    Content-Length, chunked, or up to the close when the server says it closes), read up to
    REFUSAL_CAP within the exec's deadline; "" when it is not JSON."""
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    length = headers.get("content-length", "").strip()
    if chunked:
        want = REFUSAL_CAP
    elif length.isdigit():
        want = min(int(length), REFUSAL_CAP)
    elif "close" in headers.get("connection", "").lower():
        want = REFUSAL_CAP
    else:
        want = 0
    data = rest
    try:
        while len(data) < want and not (chunked and data.endswith(b"0\r\n\r\n")):
            chunk = sock.recv(16384)
            if not chunk:
                break
            data += chunk
    except OSError:  # the deadline's cut, a reset: what arrived is what there is
        pass
    if chunked:
        data = _dechunk(data)
    text = data[:REFUSAL_CAP].decode("utf-8", "replace").strip()
    return text if text.startswith("{") else ""


def _dechunk(data: bytes) -> bytes:
    """A chunked body's data (RFC 9112 section 7.1), as far as it is whole."""
    out, pos = [], 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            break
        try:
            size = int(data[pos:eol].split(b";")[0].strip() or b"0", 16)
        except ValueError:
            break
        if size == 0:
            break
        out.append(data[eol + 2:eol + 2 + size])
        pos = eol + 2 + size + 2
    return b"".join(out)


class _Overrun(Exception):
    """The exec's deadline passed (internal; turned into Timeout with the command's name)."""


class _Deadlines:
    """One daemon thread for every deadline of the process: it calls each watchdog's cut
    when its time comes.  A threading.Timer a request (a thread started and torn down for
    every REST call and exec) cost about 0.45 ms of CPU each, most of an exec's overhead
    beyond its TLS handshake under `list --live`; a heap and one condition cost microseconds."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._heap: List[Tuple[float, int, "_Watchdog"]] = []
        self._seq = 0
        self._thread: Optional[threading.Thread] = None

    def add(self, dog: "_Watchdog") -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._heap, (dog.deadline, self._seq, dog))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is dog:
                self._cond.notify()  # a new earliest deadline: wake up sooner

    def cancel(self, dog: "_Watchdog") -> None:
        with self._cond:
            dog.cut = None  # the entry stays in the heap until its time; it holds nothing

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2].cut is None:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        dog = heapq.heappop(self._heap)[2]
                        cut, dog.cut = dog.cut, None
                        break
                    self._cond.wait(wait)
            dog.expired.set()
            try:
                cut()
            except Exception:  # noqa: BLE001 - a socket already gone: nothing left to cut
                pass


_DEADLINES = _Deadlines()


class _Watchdog:
    """Calls `cut` once when the deadline passes, so a read that waits on the socket is ended
    even while bytes trickle in; `expired` tells the reader it was cut.  cancel() before
    handing the connection back, so a late cut cannot hit a reused one."""

    def __init__(self, deadline: float, cut):
        self.deadline = deadline
        self.cut = cut
        self.expired = threading.Event()
        _DEADLINES.add(self)

    def cancel(self) -> None:
        _DEADLINES.cancel(self)


class _SocketCut:
    """The exec's deadline cut: shuts down whichever socket the exec is on at the moment (the
    TCP socket while TLS starts, then the TLS one), and one handed over after the deadline."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sock = None
        self._fired = False

    def on(self, sock) -> None:
        with self._lock:
            self._sock = sock
            if self._fired:
                self._shut(sock)

    def __call__(self) -> None:
        with self._lock:
            self._fired = True
            if self._sock is not None:
                self._shut(self._sock)

    @staticmethod
    def _shut(sock) -> None:
        import socket

        try:  # the plain socket's shutdown: a reader blocked in SSL_read on it returns at once
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


class _Failed:
    """A non-2xx answer, in the shape _api_error reads (status, body, reason, content type)."""

    def __init__(self, status, body, reason, content_type=""):
        self.status, self.body, self.reason, self.content_type = status, body, reason, content_type


def _subprotocol(ws) -> Optional[str]:
    """The channel protocol the server chose (the client's WSClient reads it the same way:
    websocket-client knows it only when it offered it, else from the response headers)."""
    chosen = getattr(ws, "subprotocol", None)
    if not chosen:
        for key, value in (ws.getheaders() or {}).items():
            if key.lower() == "sec-websocket-protocol":
                return value
    return chosen


def _strip_headers(headers: Dict[str, str]) -> None:
    """Header values as sent: no surrounding whitespace (a token read with its newline)."""
    for key, value in list(headers.items()):
        if isinstance(value, str):
            headers[key] = value.strip()


def _handshake_body(text: str) -> str:
    """The response body of a refused handshake: the part after the last separator."""
    body = text.rsplit("-+-+-", 1)[-1].strip() if "-+-+-" in text else ""
    m = re.fullmatch(r"b(['\"])(.*)\1", body, re.S)
    if m:
        import ast

        try:
            body = ast.literal_eval(body).decode("utf-8", "replace")
        except (ValueError, SyntaxError, AttributeError):
            body = m.group(2)
    return body if body.startswith("{") else ""


def _request_text(what) -> str:
    """`get virtualmachines.kubevirt.io testvm in namespace default`, for messages."""
    if not what or not what[0]:
        return "the request"
    verb, group, resource, ns, name = what
    text = "`%s %s%s`" % (verb, "%s.%s" % (resource, group) if group else resource, " " + name if name else "")
    return text + (" in namespace %s" % ns if ns else "")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) < 300 else text[:297] + "..."
