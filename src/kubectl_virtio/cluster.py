"""The cluster adapter: the only module that imports `kubernetes`.

Everything goes through the official client's generic `ApiClient.call_api` with raw JSON
(`_preload_content=False`): KubeVirt objects are custom resources anyway, and skipping the
typed APIs and model deserialisation is what keeps a live command fast (see bench/explain).
Pod exec uses the client's own WebSocket stream (v5 and v4 channel protocols).

Timeouts: `--request-timeout` bounds every REST request (urllib3's total timeout, no retry
that would double it), the exec WebSocket handshake and the exec itself; exec has a default
(EXEC_TIMEOUT) because `virsh` can hang on a stuck virtqemud.  KUBECTL_VIRTIO_TIMINGS=1
prints where the time went on stderr at exit (bench/explain reads it).
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from kubectl_virtio.errors import ClusterError

KUBEVIRT = ("kubevirt.io", "v1")
SUBRESOURCES = ("subresources.kubevirt.io", "v1")
INSTANCETYPE = ("instancetype.kubevirt.io", "v1beta1")
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
EXEC_TIMEOUT = 30.0  # seconds, for the exec when --request-timeout is not given


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


def _stand_in_classes() -> Dict[str, Dict[str, Any]]:
    from typing import TypeVar

    return {"pydantic": {"SecretStr": _SecretStr},
            "kubernetes.client.api_response": {"ApiResponse": _ApiResponse, "T": TypeVar("T")}}


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
        import kubernetes.stream.ws_client  # noqa: F401
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


@dataclass
class ExecResult:
    returncode: int
    stdout: str
    stderr: str


class NotFound(ClusterError):
    pass


class Forbidden(ClusterError):
    pass


class Conflict(ClusterError):
    pass


class Timeout(ClusterError):
    pass


def _load_client(kubeconfig: Optional[str], context: Optional[str]):
    """ApiClient and default namespace, as kubectl resolves them: --kubeconfig, else
    $KUBECONFIG (a list), else ~/.kube/config, else the in-cluster service account."""
    start = time.perf_counter()
    _import_client()
    _mark("import", start)
    start = time.perf_counter()
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    paths = [p for p in path.split(os.pathsep) if p]
    if kubeconfig and not os.path.exists(kubeconfig):
        raise ClusterError("kubeconfig %s does not exist" % kubeconfig)
    have_file = any(os.path.exists(p) for p in paths)
    try:
        if have_file:
            cfg = client.Configuration()
            config.load_kube_config(config_file=path, context=context, client_configuration=cfg)
            contexts, active = config.list_kube_config_contexts(config_file=path)
            if context:
                active = next((c for c in contexts if c.get("name") == context), active)
            namespace = (active or {}).get("context", {}).get("namespace") or "default"
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
        raise ClusterError("invalid kubeconfig: %s" % e) from None
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise ClusterError("cannot load kubeconfig %s: %s" % (path, e)) from None
    # No urllib3 retries: a refused connection fails at once, and a timeout is not silently
    # doubled (kubectl does not retry either).
    cfg.retries = 0
    api = client.ApiClient(cfg)
    _mark("config", start)
    return api, namespace


class Cluster:
    def __init__(self, kubeconfig=None, context=None, namespace=None, request_timeout=None):
        self.api, default_ns = _load_client(kubeconfig, context)
        self.namespace = namespace or default_ns
        self.timeout = request_timeout or None
        self.exec_timeout = request_timeout or EXEC_TIMEOUT
        self.server = self.api.configuration.host

    # -- plumbing -----------------------------------------------------------------------
    def _call(self, method: str, path: str, *, query=None, body=None, content_type=None,
              what: Tuple[str, str, str, Optional[str], Optional[str]] = ("", "", "", None, None)) -> Any:
        """One REST call through the client's generic request path (param_serialize for URL
        and auth, call_api for the transport), raw JSON in and out. `what` = (verb, group,
        resource, namespace, name) for error messages."""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        start = time.perf_counter()
        try:
            req = self.api.param_serialize(method, path, query_params=list(query or []), header_params=headers,
                                           body=body, auth_settings=["BearerToken"])
            resp = self.api.call_api(*req, _request_timeout=self.timeout)
            data = resp.read()
        except Exception as e:  # urllib3 and the client's transport errors: refused, TLS, timeout, DNS
            raise self._transport_error(e, what) from None
        finally:
            _mark("api", start)
        if not 200 <= resp.status < 300:
            raise self._api_error(_Failed(resp.status, data, getattr(resp, "reason", "")), what)
        return json.loads(data) if data else {}

    def _api_error(self, e, what) -> ClusterError:
        verb, group, resource, ns, name = what
        status: Dict[str, Any] = {}
        try:
            status = json.loads(e.body) if e.body else {}
            status = status if isinstance(status, dict) else {}
        except (ValueError, TypeError):
            pass
        message = status.get("message") or e.reason or ""
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        full = "%s.%s" % (resource, group) if group else resource
        if e.status == 0:
            return self._transport_error(e, what)
        if e.status == 401:
            return ClusterError("the API server %s rejected the credentials (401 Unauthorized)" % self.server,
                                "log in again or check the user of the current context in the kubeconfig")
        if e.status == 403:
            where = " in namespace %s" % ns if ns else ""
            return Forbidden("forbidden: %s" % message,
                             "ask for RBAC permission to %s %s%s" % (verb, full, where))
        if e.status == 404:
            return NotFound(message or "%s %s not found" % (full, name))
        if e.status == 409:
            return Conflict(message or "conflict")
        return ClusterError("%s %s %s: %s (HTTP %s)" % (verb, full, name or "", message, e.status))

    def _transport_error(self, e, what=None, timeout=None) -> ClusterError:
        text = str(getattr(e, "reason", None) or e)
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
        base = "/apis/%s/%s" % group + ("/namespaces/%s" % ns if ns else "") + "/" + plural
        return base + ("/" + name if name else "")

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
        return self._get_optional("/apis/apps/v1/namespaces/%s/controllerrevisions/%s" % (ns, name),
                                  ("get", "apps", "controllerrevisions", ns, name))

    def get_preference(self, ns: str, name: str, cluster_scoped: bool):
        plural = "virtualmachineclusterpreferences" if cluster_scoped else "virtualmachinepreferences"
        return self._get_optional(self._kv_path(None if cluster_scoped else ns, plural, name, INSTANCETYPE),
                                  ("get", INSTANCETYPE[0], plural, None if cluster_scoped else ns, name))

    def list_vms(self, ns: Optional[str], selector: Optional[str] = None) -> List[Dict[str, Any]]:
        query = [("labelSelector", selector)] if selector else []
        return self._call("GET", self._kv_path(ns, "virtualmachines"), query=query,
                          what=("list", "kubevirt.io", "virtualmachines", ns, None)).get("items") or []

    def list_vmis(self, ns: Optional[str], selector: Optional[str] = None) -> List[Dict[str, Any]]:
        query = [("labelSelector", selector)] if selector else []
        return self._call("GET", self._kv_path(ns, "virtualmachineinstances"), query=query,
                          what=("list", "kubevirt.io", "virtualmachineinstances", ns, None)).get("items") or []

    def list_launcher_pods(self, ns: str, vmi_uid: str) -> List[Dict[str, Any]]:
        # The labels KubeVirt itself selects launcher pods by (tests/libpod GetPodByVirtualMachineInstance).
        selector = "kubevirt.io=virt-launcher,kubevirt.io/created-by=%s" % vmi_uid
        return self._call("GET", "/api/v1/namespaces/%s/pods" % ns, query=[("labelSelector", selector)],
                          what=("list", "", "pods", ns, None)).get("items") or []

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
        """Run argv (never a shell string) in a container over the client's WebSocket (v5 and v4
        channel protocols); stdout, stderr and the exit status are kept apart (the client's
        default call merges the two streams and drops the status).  `timeout` (default: the
        --request-timeout, else EXEC_TIMEOUT) bounds the handshake and the command together."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.stream.ws_client import websocket_call

        timeout = timeout or self.exec_timeout
        query = [("command", a) for a in argv] + [("container", container), ("stderr", "true"),
                                                  ("stdin", "false"), ("stdout", "true"), ("tty", "false")]
        what = ("create", "", "pods/exec", ns, pod)
        _, url, headers, _, _ = self.api.param_serialize(
            "GET", "/api/v1/namespaces/{namespace}/pods/{name}/exec", path_params={"namespace": ns, "name": pod},
            query_params=query, header_params={"Accept": "*/*"}, auth_settings=["BearerToken"])
        start = time.perf_counter()
        deadline = time.monotonic() + timeout
        # The client's WebSocket connect takes no timeout (websocket-client then blocks without
        # one), so the handshake runs in a daemon thread that is abandoned when it overruns.
        box: Dict[str, Any] = {}

        def handshake():
            try:
                box["ws"] = websocket_call(self.api.configuration, "GET", url, headers=headers,
                                           _preload_content=False)
            except BaseException as e:  # noqa: BLE001 - handed to the caller below
                box["error"] = e

        try:
            worker = threading.Thread(target=handshake, name="exec-handshake", daemon=True)
            worker.start()
            worker.join(timeout)
            if worker.is_alive():
                raise Timeout("the API server %s did not complete the exec WebSocket handshake (create pods/exec "
                              "for pod %s in namespace %s) within %gs" % (self.server, pod, ns, timeout),
                              "raise --request-timeout, or check the API server and the kubelet of the pod's node")
            if "error" in box:
                e = box["error"]
                if isinstance(e, ApiException):
                    raise self._exec_error(e, what, timeout) from None
                raise e
            ws = box["ws"]
            finished = False
            try:
                ws.run_forever(timeout=max(0.001, deadline - time.monotonic()))
                if ws.is_open():
                    raise Timeout("`%s` in pod %s (container %s) did not finish within %gs"
                                  % (" ".join(argv), pod, container, timeout),
                                  "raise --request-timeout, or check the pod: `kubectl describe pod %s -n %s`"
                                  % (pod, ns))
                finished = True
                out, err = ws.read_stdout(timeout=0) or "", ws.read_stderr(timeout=0) or ""
                rc = ws.returncode
            finally:
                # A command that overran: do not wait for the server's close frame either.
                ws.close(**({} if finished else {"timeout": 0}))
        finally:
            _mark("exec", start)
        return ExecResult(returncode=rc if rc is not None else 0, stdout=out, stderr=err)

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


class _Failed:
    """A non-2xx answer, in the shape _api_error reads (status, body, reason)."""

    def __init__(self, status, body, reason):
        self.status, self.body, self.reason = status, body, reason


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
