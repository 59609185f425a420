"""Paged LIST in the test API server (as the real one pages) and the adapter's iter_list."""
import base64
import json

import pytest

from apiserver import fleet, objects, paging


def _pages(client, path, **query):
    """Every page of a LIST through the unmodified kubernetes client, raw JSON."""
    pages, cont = [], None
    while True:
        q = dict(query)
        if cont:
            q["continue"] = cont
        data = _get(client, path, q)
        pages.append(data)
        cont = data["metadata"].get("continue")
        if not cont:
            return pages


def _get(client, path, query):
    resp = client.call_api(*client.param_serialize("GET", path, query_params=list(query.items()),
                                                   header_params={"Accept": "application/json"},
                                                   auth_settings=["BearerToken"]))
    resp.read()
    if resp.status != 200:
        raise _Status(resp.status, json.loads(resp.data))
    return json.loads(resp.data)


class _Status(Exception):
    def __init__(self, code, body):
        super().__init__(code)
        self.code, self.body = code, body


def test_limit_and_continue_walk_every_vm_once(cluster):
    fleet.load(cluster.server, vms=23, running=10, namespaces=3)
    client = cluster.api_client()
    pages = _pages(client, "/apis/kubevirt.io/v1/virtualmachines", limit=5)
    assert [len(p["items"]) for p in pages] == [5, 5, 5, 5, 3]
    names = [(i["metadata"]["namespace"], i["metadata"]["name"]) for p in pages for i in p["items"]]
    assert len(names) == len(set(names)) == 23
    # etcd key order: namespace/name
    assert names == sorted(names, key=lambda k: "%s/%s" % k)
    assert pages[0]["metadata"]["remainingItemCount"] == 18
    assert "continue" not in pages[-1]["metadata"] and "remainingItemCount" not in pages[-1]["metadata"]
    # the token is opaque to clients but is what the real server sends: base64url JSON
    token = pages[0]["metadata"]["continue"]
    decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert decoded["v"] == "meta.k8s.io/v1" and decoded["start"].endswith("\x00")


def test_paging_within_a_namespace_and_with_a_selector(cluster):
    fleet.load(cluster.server, vms=40, running=40, namespaces=4)
    client = cluster.api_client()
    pages = _pages(client, "/apis/kubevirt.io/v1/namespaces/ns-001/virtualmachineinstances", limit=3)
    items = [i for p in pages for i in p["items"]]
    assert len(items) == 10 and {i["metadata"]["namespace"] for i in items} == {"ns-001"}
    # the selector filters on the server; pages stay full; no remainingItemCount when filtered
    pages = _pages(client, "/api/v1/pods", limit=4, labelSelector="kubevirt.io=virt-launcher,app=web")
    items = [i for p in pages for i in p["items"]]
    assert len(items) == 24  # 6 of every 10 VMs run the "web" variant
    assert all(len(p["items"]) == 4 for p in pages)
    assert all("remainingItemCount" not in p["metadata"] for p in pages)
    assert all("kind" not in i for i in items)  # built-in lists leave kind out of their items


def test_expired_and_malformed_continue_tokens(cluster):
    fleet.load(cluster.server, vms=10, running=0, namespaces=1)
    client = cluster.api_client()
    first = _get(client, "/apis/kubevirt.io/v1/virtualmachines", {"limit": "4"})
    token = first["metadata"]["continue"]
    with pytest.raises(_Status) as bad:
        _get(client, "/apis/kubevirt.io/v1/virtualmachines", {"limit": "4", "continue": "not-a-token"})
    assert bad.value.code == 400 and "continue key is not valid" in bad.value.body["message"]
    paging.compact(cluster.store)
    with pytest.raises(_Status) as gone:
        _get(client, "/apis/kubevirt.io/v1/virtualmachines", {"limit": "4", "continue": token})
    assert gone.value.code == 410 and gone.value.body["reason"] == "Expired"


def test_kubectl_pages_through_the_server(cluster):
    fleet.load(cluster.server, vms=1203, running=0, namespaces=7)
    r = cluster.kubectl("get", "vm", "-A", "-o", "json", "--chunk-size", "500")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["items"]) == 1203
    lists = cluster.request_log(path_prefix="/apis/kubevirt.io/v1/virtualmachines")
    assert len(lists) == 3 and all("limit=500" in rec.query for rec in lists)


def test_iter_list_streams_pages(cluster):
    from kubectl_virtio.cluster import Cluster

    fleet.load(cluster.server, vms=30, running=12, namespaces=3)
    cluster.put(objects.vm("odd", "other", labels={"app": "web"}, run_strategy="Halted"))
    c = Cluster(cluster.kubeconfig_path)
    pages = list(c.iter_list("vms", None, limit=7))
    assert [len(p) for p in pages] == [7, 7, 7, 7, 3]
    assert sum(1 for p in c.iter_list("vmis", "ns-001", limit=2) for _ in p) == 4
    web = [o["metadata"]["name"] for p in c.iter_list("vms", None, "app=web", limit=5) for o in p]
    assert "odd" in web and len(web) == 19
    pods = [o for p in c.iter_list("pods", None, "kubevirt.io=virt-launcher", limit=100) for o in p]
    assert len(pods) == 12
    lists = cluster.request_log(path_prefix="/apis/kubevirt.io/v1/virtualmachines")
    assert len(lists) == 5 + 4  # one request a page, no more


def test_iter_list_says_clearly_when_a_token_expired(cluster):
    from kubectl_virtio.cluster import Cluster, ClusterError

    fleet.load(cluster.server, vms=9, running=0, namespaces=1)
    c = Cluster(cluster.kubeconfig_path)
    it = c.iter_list("vms", None, limit=4)
    first = next(it)
    paging.compact(cluster.store)
    with pytest.raises(ClusterError) as e:
        list(it)
    assert "expired" in e.value.message and len(first) == 4


def test_prefetch_starts_reading_when_made_and_hands_errors_to_the_reader():
    """The launcher pod, VM and VMI LISTs run at once: each stream starts its first request
    when it is made, not when it is first read (a generator function would wait)."""
    import threading

    from kubectl_virtio import fleet_list as FL

    started, released = threading.Event(), threading.Event()

    def pages():
        started.set()
        yield [1]
        released.wait(10)
        yield [2]

    stream = FL.prefetch(pages(), depth=1)
    assert started.wait(5), "the first page was not asked for until the stream was read"
    assert next(stream) == [1]
    released.set()
    assert list(stream) == [[2]]
    # an error in the pages reaches the reader
    def broken():
        raise ValueError("bad page")
        yield  # noqa: unreachable - a generator

    try:
        list(FL.prefetch(broken()))
    except ValueError as e:
        assert str(e) == "bad page"
    else:
        raise AssertionError("the error was lost")


def test_prefetch_holds_at_most_depth_pages_beyond_the_one_being_read():
    """A page is asked for only when there is room for it: with depth 1, while the reader holds
    page 1, page 2 waits and page 3 is not fetched (memory does not grow with the fleet)."""
    import threading
    import time

    from kubectl_virtio import fleet_list as FL

    produced = []
    lock = threading.Lock()

    def pages():
        for i in range(10):
            with lock:
                produced.append(i)
            yield [i]

    stream = FL.prefetch(pages(), depth=1)
    assert next(stream) == [0]
    time.sleep(0.5)  # ample time for a pump that would run ahead
    with lock:
        assert produced == [0, 1], produced
    assert [p[0] for p in stream] == list(range(1, 10))
