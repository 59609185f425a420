"""The cluster adapter: the only module that imports `kubernetes`.

Everything goes through the official client's generic `ApiClient.call_api` with raw JSON
(`_preload_content=False`): KubeVirt objects are custom resources anyway, and skipping the
typed APIs and model deserialisation is what keeps a live command fast (see bench/explain).
Pod exec uses the client's own WebSocket stream (v5 and v4 channel protocols).
"""
from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from kubectl_virtio.errors import ClusterError

KUBEVIRT = ("kubevirt.io", "v1")
SUBRESOURCES = ("subresources.kubevirt.io", "v1")
INSTANCETYPE = ("instancetype.kubevirt.io", "v1beta1")
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


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


def _load_client(kubeconfig: Optional[str], context: Optional[str]):
    """ApiClient and default namespace, as kubectl resolves them: --kubeconfig, else
    $KUBECONFIG (a list), else ~/.kube/config, else the in-cluster service account."""
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
            _, active = config.list_kube_config_contexts(config_file=path)
            if context:
                contexts, _ = config.list_kube_config_contexts(config_file=path)
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
    cfg.retries = 1  # urllib3 would retry a refused connection three times
    return client.ApiClient(cfg), namespace


class Cluster:
    def __init__(self, kubeconfig=None, context=None, namespace=None, request_timeout=None):
        self.api, default_ns = _load_client(kubeconfig, context)
        self.namespace = namespace or default_ns
        self.timeout = request_timeout or None
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
        try:
            req = self.api.param_serialize(method, path, query_params=list(query or []), header_params=headers,
                                           body=body, auth_settings=["BearerToken"])
            resp = self.api.call_api(*req, _request_timeout=self.timeout)
            data = resp.read()
        except Exception as e:  # urllib3 and the client's transport errors: refused, TLS, timeout, DNS
            raise self._transport_error(e) from None
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
            return self._transport_error(e)
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

    def _transport_error(self, e) -> ClusterError:
        text = str(getattr(e, "reason", None) or e)
        low = text.lower()
        if "certificate" in low or "ssl" in low or "tls" in low:
            return ClusterError("TLS verification of %s failed: %s" % (self.server, _short(text)),
                                "check certificate-authority(-data) of the cluster in the kubeconfig")
        if "refused" in low:
            return ClusterError("cannot connect to the API server %s: connection refused" % self.server,
                                "is the cluster up, and is the current context the right one?")
        if "timed out" in low or "timeout" in low:
            return ClusterError("the API server %s did not answer within %ss" % (self.server, self.timeout or "?"),
                                "raise --request-timeout or check the network")
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
        """Run independent reads at once (the client's connection pool is thread-safe)."""
        calls = [c for c in calls if c is not None]
        if len(calls) <= 1:
            return [c() for c in calls]
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            futures = [pool.submit(c) for c in calls]
            return [f.result() for f in futures]

    # -- exec ---------------------------------------------------------------------------
    def exec(self, ns: str, pod: str, container: str, argv: List[str], timeout: float = 60) -> ExecResult:
        """Run argv (never a shell string) in a container over the client's WebSocket (v5 and v4
        channel protocols); stdout, stderr and the exit status are kept apart (the client's
        default call merges the two streams and drops the status)."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.stream.ws_client import websocket_call

        query = [("command", a) for a in argv] + [("container", container), ("stderr", "true"),
                                                  ("stdin", "false"), ("stdout", "true"), ("tty", "false")]
        what = ("create", "", "pods/exec", ns, pod)
        _, url, headers, _, _ = self.api.param_serialize(
            "GET", "/api/v1/namespaces/{namespace}/pods/{name}/exec", path_params={"namespace": ns, "name": pod},
            query_params=query, header_params={"Accept": "*/*"}, auth_settings=["BearerToken"])
        try:
            ws = websocket_call(self.api.configuration, "GET", url, headers=headers, _preload_content=False)
        except ApiException as e:
            raise self._exec_error(e, what) from None
        try:
            ws.run_forever(timeout=timeout)
            if ws.is_open():
                raise ClusterError("`%s` in pod %s did not finish within %ss" % (" ".join(argv), pod, timeout))
            out, err = ws.read_stdout(timeout=0) or "", ws.read_stderr(timeout=0) or ""
            rc = ws.returncode
        finally:
            ws.close()
        return ExecResult(returncode=rc if rc is not None else 0, stdout=out, stderr=err)

    def _exec_error(self, e, what) -> ClusterError:
        # A refused WebSocket handshake arrives as status 0, the HTTP answer in `reason`:
        # "Handshake status 403 Forbidden -+-+- {headers} -+-+- b'{status json}'".
        text = str(e.reason or "")
        m = re.search(r"Handshake status (\d{3})", text)
        if m:
            return self._api_error(_Failed(int(m.group(1)), _json_tail(text), "HTTP " + m.group(1)), what)
        return self._transport_error(e)

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


class _Failed:
    """A non-2xx answer, in the shape _api_error reads (status, body, reason)."""

    def __init__(self, status, body, reason):
        self.status, self.body, self.reason = status, body, reason


def _json_tail(text: str) -> str:
    i, j = text.find("{"), text.rfind("}")
    return text[i:j + 1] if 0 <= i < j else ""


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) < 300 else text[:297] + "..."
