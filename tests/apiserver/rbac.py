"""Bearer-token users and RBAC-style rules.

Mirrors the parts of Kubernetes RBAC a plugin can observe: rules grant verbs on
(apiGroup, resource[/subresource]) either cluster-wide or in listed namespaces, a `*`
resource also covers subresources, `pods` does not cover `pods/exec`, and a denial is
reported with the authorizer's sentence ("User X cannot VERB resource R in API group G ...").
"""
from __future__ import annotations

from dataclasses import dataclass, field

READ = ("get", "list", "watch")


@dataclass(frozen=True)
class Rule:
    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ("*",)
    resources: tuple[str, ...] = ("*",)
    # None = every namespace and cluster-scoped resources (a ClusterRoleBinding);
    # a tuple = only namespaced requests in those namespaces (RoleBindings).
    namespaces: tuple[str, ...] | None = None
    resource_names: tuple[str, ...] = ()

    def allows(self, verb: str, group: str, resource: str, namespace: str, name: str) -> bool:
        if "*" not in self.verbs and verb not in self.verbs:
            return False
        if "*" not in self.api_groups and group not in self.api_groups:
            return False
        if not any(_resource_matches(pattern, resource) for pattern in self.resources):
            return False
        if self.namespaces is not None and (not namespace or namespace not in self.namespaces):
            return False
        if self.resource_names and name not in self.resource_names:
            return False
        return True


def _resource_matches(pattern: str, resource: str) -> bool:
    if pattern == "*" or pattern == resource:
        return True
    # RBAC also allows "*/scale"-style patterns for one subresource of every resource.
    if pattern.startswith("*/") and "/" in resource:
        return resource.split("/", 1)[1] == pattern[2:]
    return False


@dataclass
class User:
    name: str
    token: str
    rules: list[Rule] = field(default_factory=list)
    groups: tuple[str, ...] = ("system:authenticated",)

    def can(self, verb: str, group: str, resource: str, namespace: str = "", name: str = "") -> bool:
        return any(r.allows(verb, group, resource, namespace, name) for r in self.rules)


def forbidden_reason(user: str, verb: str, group: str, resource: str, namespace: str) -> str:
    """The authorizer's explanation, as the API server prints it after "is forbidden: "."""
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return f'User "{user}" cannot {verb} resource "{resource}" in API group "{group}" {where}'


_VM_WRITE = Rule(("patch", "update"), ("kubevirt.io",), ("virtualmachines",))
_RESTART = Rule(("update",), ("subresources.kubevirt.io",), ("virtualmachines/restart",))
_EXEC = Rule(("create", "get"), ("",), ("pods/exec",))
_VIEW = Rule(READ)

# name -> rules; every user's token is "<name>-token-<PLANTED>" (see kubeconfig.PLANTED).
DEFAULT_USERS: dict[str, list[Rule]] = {
    "admin": [Rule(("*",))],
    "viewer": [_VIEW],
    "editor": [_VIEW, _VM_WRITE, _RESTART, _EXEC],
    "noexec": [_VIEW, _VM_WRITE, _RESTART],
    "norestart": [_VIEW, _VM_WRITE, _EXEC],
    "ns-viewer": [Rule(READ, namespaces=("default",))],
    "nobody": [],
}


def default_users() -> dict[str, User]:
    return {name: User(name, token_for(name), list(rules)) for name, rules in DEFAULT_USERS.items()}


def token_for(name: str) -> str:
    from .kubeconfig import PLANTED

    return f"{name}-token-{PLANTED}"
