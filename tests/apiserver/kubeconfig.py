"""Writes kubeconfig files (clusters, token users, contexts) that point at the test server.

Every secret the test suite hands out carries PLANTED (user tokens end in it, and every user
entry written here also holds a planted client key that is never used), so
tests/conftest.py can check that no output of any plugin run ever shows one.
"""
from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass


# A marker no real output contains; in every token, password and client key of the suite.
PLANTED = "vtplanted-5e3c1f"


def planted_secrets(user: str) -> dict:
    """A decoy credential for a token user's entry: a client key, which the Python client and
    kubectl use only together with a client certificate.  (No password: kubectl refuses a
    user with both a token and basic auth.)"""
    key_pem = ("-----BEGIN PRIVATE KEY-----\n%s-key-%s\n-----END PRIVATE KEY-----\n" % (user, PLANTED)).encode()
    return {"client-key-data": base64.b64encode(key_pem).decode()}


@dataclass(frozen=True)
class ContextSpec:
    name: str
    user: str
    namespace: str | None = None
    bad_ca: bool = False        # the context's cluster trusts a CA that did not sign the server


def render(server_url: str, ca_pem: bytes, bad_ca_pem: bytes, tokens: dict[str, str],
           contexts: list[ContextSpec], current_context: str) -> dict:
    """Build the kubeconfig document. `tokens` maps every user named in `contexts` to its token."""
    clusters, users, ctx_entries = [], [], []
    needed_clusters = sorted({c.bad_ca for c in contexts})
    for bad in needed_clusters:
        pem = bad_ca_pem if bad else ca_pem
        clusters.append({"name": "virtio-test-bad-ca" if bad else "virtio-test",
                         "cluster": {"server": server_url,
                                     "certificate-authority-data": base64.b64encode(pem).decode()}})
    for user in sorted({c.user for c in contexts}):
        users.append({"name": user, "user": {"token": tokens[user], **planted_secrets(user)}})
    for c in contexts:
        entry = {"cluster": "virtio-test-bad-ca" if c.bad_ca else "virtio-test", "user": c.user}
        if c.namespace:
            entry["namespace"] = c.namespace
        ctx_entries.append({"name": c.name, "context": entry})
    return {"apiVersion": "v1", "kind": "Config", "preferences": {}, "clusters": clusters,
            "users": users, "contexts": ctx_entries, "current-context": current_context}


def write(path: str | os.PathLike, document: dict) -> str:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        import yaml
        text = yaml.safe_dump(document, sort_keys=False)
    except ImportError:          # JSON is valid YAML, and every kubeconfig loader accepts it
        text = json.dumps(document, indent=2)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path
