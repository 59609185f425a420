"""Cluster access as kubectl resolves it: KUBECONFIG lists, --context, context namespaces,
exec credential plugins, OIDC, in-cluster config, and tokens that never reach the output."""
import base64
import http.server
import json
import os
import pathlib
import shutil
import ssl
import stat
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest
import yaml

from apiserver import objects
from apiserver.rbac import Rule


def put_vm(cluster, ns="default"):
    cluster.put(objects.vm("testvm", ns, run_strategy="Halted"))


def explain_ns(run_plugin, *args, env):
    r = run_plugin("explain", "testvm", "-o", "json", *args, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["vm"]["namespace"]


def test_kubeconfig_list_and_context(run_plugin, cluster, tmp_path):
    put_vm(cluster, "prod")
    put_vm(cluster, "default")
    # file 1: the current context (admin in default); file 2: another context "prod-ctx"
    first = cluster.kubeconfig_for("admin")
    second = yaml.safe_load(open(cluster.kubeconfig_for("admin", namespace="prod")))
    for key in ("contexts", "users", "clusters"):
        for item in second[key]:
            item["name"] = "prod-" + item["name"]
    for c in second["contexts"]:
        c["context"]["cluster"] = "prod-" + c["context"]["cluster"]
        c["context"]["user"] = "prod-" + c["context"]["user"]
    second.pop("current-context", None)
    p2 = tmp_path / "second.yaml"
    p2.write_text(yaml.safe_dump(second))
    ctx = second["contexts"][0]["name"]
    env = cluster.env()
    env["KUBECONFIG"] = os.pathsep.join([first, str(p2)])
    assert explain_ns(run_plugin, env=env) == "default"
    assert explain_ns(run_plugin, "--context", ctx, env=env) == "prod"
    assert explain_ns(run_plugin, "--context", ctx, "-n", "default", env=env) == "default"
    r = run_plugin("explain", "testvm", "--context", "nope", env=env)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "nope" in r.stderr


def test_exec_credential_plugin(run_plugin, cluster, tmp_path):
    """An `exec:` user (EKS/GKE style): the client runs the helper and uses its token."""
    put_vm(cluster)
    helper = tmp_path / "credential-helper"
    helper.write_text("#!%s\nimport json\nprint(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', "
                      "'kind': 'ExecCredential', 'status': {'token': %r}}))\n" % (sys.executable, cluster.token("admin")))
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    path = cluster.kubeconfig_with_exec_user(str(helper))
    r = run_plugin("explain", "testvm", "-o", "json", "--kubeconfig", str(path), env=cluster.env())
    assert r.returncode == 0, r.stderr
    assert [x.user for x in cluster.request_log()][-1] == "admin"


def test_tokens_never_in_output_even_with_debug(run_plugin, cluster):
    put_vm(cluster)
    for args in (["explain", "testvm", "--debug"], ["explain", "nope", "--debug"], ["dumpxml", "testvm", "--debug"]):
        for user in ("admin", "nobody"):
            r = run_plugin(*args, env=cluster.env(user=user))
            assert "-token" not in r.stdout + r.stderr, (args, user)


def test_request_timeout_flag(run_plugin, cluster):
    put_vm(cluster)
    r = run_plugin("explain", "testvm", "--request-timeout", "10s", env=cluster.env())
    assert r.returncode == 0, r.stderr
    r = run_plugin("explain", "testvm", "--request-timeout", "soon", env=cluster.env())
    assert r.returncode == 2 and "invalid duration" in r.stderr


def test_no_kubeconfig_at_all(run_plugin, tmp_path):
    env = {"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "missing")}
    r = run_plugin("explain", "testvm", env=env)
    assert r.returncode == 1 and r.stderr.startswith("error: no kubeconfig found"), r.stderr


# --- OIDC (auth-provider oidc), as the official client does it ---------------------------------
# kubernetes.config.kube_config uses the id-token while it is valid and refreshes it at the
# issuer's token endpoint (requests_oauthlib, imported by the plugin only on that path) once it
# has expired, writing the new tokens back to the kubeconfig.

def jwt(subject: str, expires_in: int) -> str:
    def b64(doc):
        return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode().rstrip("=")

    for pad in range(4):  # the client refuses a payload whose base64 would need 3 '=' (not a JWT)
        payload = b64({"sub": subject, "exp": int(time.time()) + expires_in, "x": "x" * pad})
        if len(payload) % 4 != 1:
            return "%s.%s.%s" % (b64({"alg": "none", "typ": "JWT"}), payload, "c2ln")
    raise AssertionError("unreachable")


class IdentityProvider:
    """An HTTPS OIDC issuer on 127.0.0.1: discovery document and a refresh-token endpoint."""

    def __init__(self, tls_files, new_id_token: str):
        idp = self
        self.refreshes = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _json(self, doc):
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                assert self.path == "/.well-known/openid-configuration", self.path
                self._json({"issuer": idp.url, "token_endpoint": idp.url + "/token"})

            def do_POST(self):
                form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                idp.refreshes.append((self.headers.get("Authorization"), form))
                self._json({"id_token": new_id_token, "refresh_token": "refresh-2", "access_token": "access-2",
                            "token_type": "Bearer", "expires_in": 3600})

            def log_message(self, *args):
                pass

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tls_files.server_cert, tls_files.server_key)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = "https://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def oidc_kubeconfig(cluster, tmp_path, id_token: str, issuer: str) -> pathlib.Path:
    doc = yaml.safe_load(open(cluster.kubeconfig_for("admin")))
    for u in doc["users"]:
        u["user"] = {"auth-provider": {"name": "oidc", "config": {
            "client-id": "kubectl-virtio", "client-secret": "client-secret-1", "id-token": id_token,
            "refresh-token": "refresh-1", "idp-issuer-url": issuer,
            "idp-certificate-authority-data": base64.b64encode(cluster.ca_pem).decode()}}}
    path = tmp_path / "oidc.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_oidc_valid_id_token(run_plugin, cluster, tmp_path):
    put_vm(cluster)
    token = jwt("alice", 3600)
    cluster.add_user("alice", [Rule(("*",))], token=token)
    path = oidc_kubeconfig(cluster, tmp_path, token, "https://127.0.0.1:1")   # never contacted
    r = run_plugin("explain", "testvm", "-o", "json", "--kubeconfig", path, env=cluster.env())
    assert r.returncode == 0, r.stderr
    assert {x.user for x in cluster.request_log()} == {"alice"}


def test_oidc_expired_id_token_is_refreshed(run_plugin, cluster, tmp_path):
    put_vm(cluster)
    fresh = jwt("bob", 3600)
    cluster.add_user("bob", [Rule(("*",))], token=fresh)
    idp = IdentityProvider(cluster.tls, fresh)
    try:
        path = oidc_kubeconfig(cluster, tmp_path, jwt("bob", -3600), idp.url)
        r = run_plugin("explain", "testvm", "-o", "json", "--kubeconfig", path,
                       env=dict(cluster.env(), NO_PROXY="127.0.0.1", no_proxy="127.0.0.1"))
    finally:
        idp.close()
    assert r.returncode == 0, r.stderr
    assert [form.get("grant_type") for _, form in idp.refreshes] == [["refresh_token"]]
    assert idp.refreshes[0][1]["refresh_token"] == ["refresh-1"]
    assert idp.refreshes[0][0] == "Basic " + base64.b64encode(b"kubectl-virtio:client-secret-1").decode()
    assert {x.user for x in cluster.request_log()} == {"bob"}
    saved = yaml.safe_load(path.read_text())["users"][0]["user"]["auth-provider"]["config"]
    assert saved["id-token"] == fresh and saved["refresh-token"] == "refresh-2"   # persisted like kubectl
    assert fresh not in r.stdout + r.stderr


# --- in-cluster: KUBERNETES_SERVICE_HOST/PORT and the service account files ----------------------
# The client reads /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt} (fixed paths in
# kubernetes/config/incluster_config.py, as in client-go).  The test gives the plugin its own
# mount namespace (unshare -rm: an unprivileged user namespace) with a tmpfs over /var/run that
# holds those files, so the real, unmodified in-cluster path runs.

IN_POD = """set -e
run=$(readlink -f /var/run)
mount -t tmpfs tmpfs "$run"
mkdir -p "$run/secrets/kubernetes.io/serviceaccount"
cp "$SA_FILES"/token "$SA_FILES"/ca.crt "$SA_FILES"/namespace "$run/secrets/kubernetes.io/serviceaccount/"
exec "$@"
"""


def in_pod(plugin_path, tmp_path, args, env):
    cmd = ["unshare", "-rm", "sh", "-c", IN_POD, "sh", plugin_path, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def test_in_cluster_service_account(plugin_path, cluster, tmp_path):
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs \"$(readlink -f /var/run)\""],
                           capture_output=True, text=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("no unprivileged user+mount namespaces here (unshare -rm): %s"
                    % (probe.stderr.strip() if probe else "no unshare"))
    put_vm(cluster, "prod")
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text(cluster.token("viewer"))
    (sa / "ca.crt").write_bytes(cluster.ca_pem)
    (sa / "namespace").write_text("prod\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECONFIG")}
    env.update(HOME=str(tmp_path), NO_COLOR="1", SA_FILES=str(sa), KUBECONFIG=str(tmp_path / "none"),
               KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(cluster.port))
    r = in_pod(plugin_path, tmp_path, ["explain", "testvm", "-o", "json"], env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["vm"]["namespace"] == "prod"     # the service account's namespace
    assert {x.user for x in cluster.request_log()} == {"viewer"}
    # --context makes no sense without a kubeconfig
    r = in_pod(plugin_path, tmp_path, ["explain", "testvm", "--context", "x"], env)
    assert r.returncode == 1 and "in-cluster service account" in r.stderr, r.stderr
