"""A small, in-process Kubernetes API server for kubectl-virtio's integration tests.

It speaks enough of the real wire protocol (discovery, JSON objects and lists, Status errors,
merge/JSON patches, bearer-token auth with RBAC-style denials, the KubeVirt ``restart``
subresource and pod exec over the ``v5``/``v4.channel.k8s.io`` WebSocket protocols) that the
unmodified ``kubernetes`` Python client and a real ``kubectl`` binary can talk to it.

Typical test::

    from apiserver import NONROOT_URI

    def test_something(cluster, run_plugin):
        stack = cluster.add_running_vm("testvm", vm_kwargs={"use_virtio_transitional": True})
        cluster.set_domain("default", stack.pod["metadata"]["name"], "default_testvm", xml_text)
        result = run_plugin("explain", "testvm", env=cluster.env())
        assert cluster.api_request_count() <= 6
        assert cluster.exec_log[0].argv[:3] == ("virsh", "-c", NONROOT_URI)

Modules: :mod:`.server` (ApiServer, hooks, logs), :mod:`.objects` (factories),
:mod:`.pytest_plugin` (fixtures ``api_server``, ``cluster``, ``kubectl_path``),
:mod:`.virsh` (the simulated ``virsh``), :mod:`.rbac` (users and rules).
"""
from .rbac import DEFAULT_USERS, Rule, User
from .server import ApiServer, ExecRecord, RequestRecord, RestartRecord
from .virsh import NONROOT_URI, ROOT_URI, ExecResult, VirshConfig

__all__ = ["ApiServer", "ExecRecord", "ExecResult", "RequestRecord", "RestartRecord", "Rule",
           "User", "VirshConfig", "DEFAULT_USERS", "NONROOT_URI", "ROOT_URI"]
