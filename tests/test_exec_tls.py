"""TLS of the exec WebSocket: Cluster.exec builds one SSLContext per Cluster and reuses it
(docs/cluster.md "Exec"); it must verify exactly what the kubeconfig asks for, on every exec,
as the REST path does.  In-process Cluster objects against the test API server (real TLS,
real WebSocket), and a rogue TLS server whose certificate the kubeconfig's CA did not sign."""
import os
import socket
import ssl
import threading

import pytest
import yaml

from apiserver.virsh import NONROOT_URI

DUMPXML = ["virsh", "-c", NONROOT_URI, "dumpxml", "default_testvm"]


def edited(cluster, name, **fields):
    """The suite's kubeconfig with `fields` set on its cluster entry (None: removed)."""
    doc = yaml.safe_load(open(cluster.kubeconfig_path))
    for c in doc["clusters"]:
        for key, value in fields.items():
            if value is None:
                c["cluster"].pop(key, None)
            else:
                c["cluster"][key] = value
    path = os.path.join(cluster.tmp_path, name)
    with open(path, "w") as fh:
        yaml.safe_dump(doc, fh)
    return path


@pytest.fixture
def rogue(cluster):
    """A TLS server on loopback with a certificate signed by an unrelated CA (the test
    server's `bad_tls`); records whether any request bytes arrived after a handshake."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cluster.server.bad_tls.server_cert, cluster.server.bad_tls.server_key)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    seen = {"connections": 0, "request_bytes": 0}
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn = sock.accept()[0]
            except OSError:
                continue
            seen["connections"] += 1
            conn.settimeout(2)
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    seen["request_bytes"] += len(tls.recv(4096))
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield "https://127.0.0.1:%d" % sock.getsockname()[1], seen
    stop.set()
    t.join(2)
    sock.close()


def pod_of(cluster):
    return cluster.add_running_vm().pod["metadata"]["name"]


def test_exec_with_the_reused_context_refuses_a_certificate_the_ca_did_not_sign(cluster, rogue):
    from kubectl_virtio.cluster import Cluster, ClusterError

    pod = pod_of(cluster)
    good = Cluster(kubeconfig=cluster.kubeconfig_path)
    assert good.exec("default", pod, "compute", DUMPXML, timeout=20).returncode == 0
    # The same kubeconfig (same CA) pointed at a server whose certificate another CA signed:
    # every exec, the first (which builds the context) and the next (which reuses it), fails
    # in the TLS handshake, before any request is sent.
    url, seen = rogue
    c = Cluster(kubeconfig=edited(cluster, "rogue", server=url))
    for _ in range(3):
        with pytest.raises(ClusterError) as exc:
            c.exec("default", pod, "compute", DUMPXML, timeout=20)
        assert "TLS verification" in exc.value.message and "CERTIFICATE_VERIFY_FAILED" in exc.value.message
    ctx = c._exec_sslopt()["context"]  # noqa: SLF001 - the one context every exec used
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert seen["connections"] == 3 and seen["request_bytes"] == 0


def test_exec_refuses_the_server_when_the_kubeconfig_trusts_another_ca(cluster):
    from kubectl_virtio.cluster import Cluster, ClusterError

    pod = pod_of(cluster)
    before = len(cluster.exec_log)
    c = Cluster(kubeconfig=cluster.kubeconfig_for("admin", bad_ca=True))
    with pytest.raises(ClusterError) as exc:
        c.exec("default", pod, "compute", DUMPXML, timeout=20)
    assert "TLS verification" in exc.value.message
    assert len(cluster.exec_log) == before  # nothing ran


def test_exec_without_a_ca_in_the_kubeconfig_checks_the_default_bundle(cluster):
    """No certificate-authority: the default bundle (certifi, as the client uses), which does
    not hold the test CA, so the exec is refused."""
    from kubectl_virtio.cluster import Cluster, ClusterError

    pod = pod_of(cluster)
    c = Cluster(kubeconfig=edited(cluster, "no-ca", **{"certificate-authority-data": None}))
    with pytest.raises(ClusterError) as exc:
        c.exec("default", pod, "compute", DUMPXML, timeout=20)
    assert "TLS verification" in exc.value.message


def test_exec_under_insecure_skip_tls_verify(cluster, rogue, capsys):
    """insecure-skip-tls-verify (and no CA): the exec runs against the test server, and the
    handshake with a server no CA vouches for completes (nothing is checked, as asked)."""
    from kubectl_virtio.cluster import Cluster

    pod = pod_of(cluster)
    path = edited(cluster, "insecure", **{"certificate-authority-data": None, "insecure-skip-tls-verify": True})
    c = Cluster(kubeconfig=path)
    assert "insecure-skip-tls-verify" in capsys.readouterr().err
    r = c.exec("default", pod, "compute", DUMPXML, timeout=20)
    assert r.returncode == 0 and "<domain" in r.stdout
    assert c._exec_sslopt()["context"].verify_mode == ssl.CERT_NONE  # noqa: SLF001
    url, seen = rogue
    c = Cluster(kubeconfig=edited(cluster, "insecure-rogue", server=url, **{
        "certificate-authority-data": None, "insecure-skip-tls-verify": True}))
    with pytest.raises(Exception):  # the rogue server never answers the upgrade
        c.exec("default", pod, "compute", DUMPXML, timeout=5)
    assert seen["request_bytes"] > 0  # the handshake completed and the request was sent


@pytest.mark.parametrize("name,ok", [("localhost", True), ("wrong.invalid", False)])
def test_exec_checks_the_tls_server_name(cluster, name, ok):
    """tls-server-name: the name sent and checked instead of the URL's host (the test
    server's certificate names 127.0.0.1 and localhost)."""
    from kubectl_virtio.cluster import Cluster, ClusterError

    pod = pod_of(cluster)
    c = Cluster(kubeconfig=edited(cluster, "server-name-" + name, **{"tls-server-name": name}))
    assert c._exec_sslopt()["server_hostname"] == name  # noqa: SLF001
    if ok:
        assert c.exec("default", pod, "compute", DUMPXML, timeout=20).returncode == 0
    else:
        with pytest.raises(ClusterError) as exc:
            c.exec("default", pod, "compute", DUMPXML, timeout=20)
        assert "TLS verification" in exc.value.message


# --- the exec's connection: one deadline for every step; the kubeconfig's proxy -------------------

def test_an_exec_whose_tls_handshake_stalls_ends_at_its_deadline(cluster, silent_listener):
    """The TCP connection is accepted, the TLS handshake never answered: the exec's one
    deadline cuts it (no thread is left waiting on it), with the handshake message."""
    import time

    from kubectl_virtio.cluster import Cluster, Timeout

    pod = pod_of(cluster)
    c = Cluster(kubeconfig=edited(cluster, "silent", server=silent_listener.url))
    start = time.monotonic()
    with pytest.raises(Timeout) as exc:
        c.exec("default", pod, "compute", DUMPXML, timeout=1)
    assert time.monotonic() - start < 8
    assert "did not complete the exec WebSocket handshake (create pods/exec for pod %s in namespace default) " \
           "within 1s" % pod in exc.value.message
    assert len(silent_listener.held) == 1  # it did connect: the TLS handshake is what the deadline cut
    assert not [t for t in threading.enumerate() if t.name == "exec-handshake"]


@pytest.fixture
def connect_proxy():
    """An HTTP proxy that only tunnels (CONNECT host:port), as corporate proxies in front of
    an API server do; records the targets it tunnelled to."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.2)
    tunnels, stop = [], threading.Event()

    def pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def handle(conn):
        conn.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 8192:
            chunk = conn.recv(1024)
            if not chunk:
                conn.close()
                return
            head += chunk
        method, target = head.split(b" ")[:2]
        if method != b"CONNECT":
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            conn.close()
            return
        host, _, port = target.decode().rpartition(":")
        upstream = socket.create_connection((host, int(port)), timeout=10)
        tunnels.append(target.decode())
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        conn.settimeout(None)
        upstream.settimeout(None)
        threading.Thread(target=pipe, args=(conn, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()

    def serve():
        while not stop.is_set():
            try:
                conn = sock.accept()[0]
            except OSError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d" % sock.getsockname()[1], tunnels
    stop.set()
    t.join(2)
    sock.close()


def test_exec_goes_through_the_kubeconfig_proxy(cluster, connect_proxy):
    """proxy-url in the kubeconfig: the REST calls and the exec's WebSocket both go through it
    (the client's websocket_proxycare hands it to websocket-client, which tunnels)."""
    from kubectl_virtio.cluster import Cluster

    pod = pod_of(cluster)
    url, tunnels = connect_proxy
    c = Cluster(kubeconfig=edited(cluster, "proxied", **{"proxy-url": url}))
    before = len(cluster.exec_log)
    r = c.exec("default", pod, "compute", DUMPXML, timeout=20)
    assert r.returncode == 0 and "<domain" in r.stdout
    assert len(cluster.exec_log) == before + 1
    server = cluster.url.split("://", 1)[1]
    assert tunnels == [server]  # the exec's one connection went through the proxy
    assert c.exec("default", pod, "compute", DUMPXML, timeout=20).returncode == 0
    assert tunnels == [server, server]


def test_exec_with_the_kubeconfig_ca_does_not_load_certifi(cluster):
    """certifi's bundle (and importlib.resources behind it) is read only for a kubeconfig
    without a CA: with one, neither the client's import nor the exec loads it."""
    import subprocess
    import sys

    pod = pod_of(cluster)
    code = ("import sys\n"
            "from kubectl_virtio.cluster import Cluster\n"
            "c = Cluster(kubeconfig=%r)\n"
            "assert c.exec('default', %r, 'compute', %r, timeout=20).returncode == 0\n"
            "assert 'certifi' not in sys.modules, 'certifi loaded'\n"
            % (cluster.kubeconfig_path, pod, DUMPXML))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
