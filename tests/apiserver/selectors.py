"""Label and field selectors, with the semantics of the real API server."""
from __future__ import annotations

import re
from typing import Callable

from .status import bad_request

_SET_RE = re.compile(r"^\s*([^\s=!<>()]+)\s+(in|notin)\s*\((.*)\)\s*$")
_OP_RE = re.compile(r"^\s*([^\s=!<>()]+)\s*(==|=|!=)\s*([^\s=!<>()]*)\s*$")
_KEY_RE = re.compile(r"^\s*(!?)\s*([^\s=!<>()]+)\s*$")

Matcher = Callable[[dict], bool]


def _split_requirements(text: str) -> list[str]:
    """Split on commas that are not inside `in (...)` value sets."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> Matcher:
    """`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a`, `!a`, comma = AND.

    As in Kubernetes, `!=` and `notin` also match objects that do not have the label at all.
    """
    if not text:
        return lambda labels: True
    checks: list[Matcher] = []
    for req in _split_requirements(text):
        m = _SET_RE.match(req)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
            if op == "in":
                checks.append(lambda labels, k=key, vs=values: k in labels and labels[k] in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: k not in labels or labels[k] not in vs)
            continue
        m = _OP_RE.match(req)
        if m:
            key, op, value = m.groups()
            if op == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: k in labels and labels[k] == v)
            continue
        m = _KEY_RE.match(req)
        if m:
            negate, key = m.groups()
            if negate:
                checks.append(lambda labels, k=key: k not in labels)
            else:
                checks.append(lambda labels, k=key: k in labels)
            continue
        raise bad_request(f"unable to parse requirement: {req.strip()!r}")
    return lambda labels: all(check(labels) for check in checks)


# Field labels the API server accepts per resource (metadata.name/namespace work everywhere).
_POD_FIELDS = {
    "spec.nodeName": lambda o: o.get("spec", {}).get("nodeName", ""),
    "spec.restartPolicy": lambda o: o.get("spec", {}).get("restartPolicy", ""),
    "spec.schedulerName": lambda o: o.get("spec", {}).get("schedulerName", ""),
    "spec.serviceAccountName": lambda o: o.get("spec", {}).get("serviceAccountName", ""),
    "status.phase": lambda o: o.get("status", {}).get("phase", ""),
    "status.podIP": lambda o: o.get("status", {}).get("podIP", ""),
    "status.nominatedNodeName": lambda o: o.get("status", {}).get("nominatedNodeName", ""),
}
_COMMON_FIELDS = {
    "metadata.name": lambda o: o.get("metadata", {}).get("name", ""),
    "metadata.namespace": lambda o: o.get("metadata", {}).get("namespace", ""),
}


def parse_field_selector(text: str | None, plural: str) -> Matcher:
    """`field=value`, `field==value`, `field!=value`, comma = AND."""
    if not text:
        return lambda obj: True
    fields = dict(_COMMON_FIELDS)
    if plural == "pods":
        fields.update(_POD_FIELDS)
    checks: list[Matcher] = []
    for req in _split_requirements(text):
        m = _OP_RE.match(req)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{req.strip()}'")
        key, op, value = m.groups()
        if key not in fields:
            raise bad_request(f"field label not supported: {key}")
        getter = fields[key]
        if op == "!=":
            checks.append(lambda obj, g=getter, v=value: str(g(obj)) != v)
        else:
            checks.append(lambda obj, g=getter, v=value: str(g(obj)) == v)
    return lambda obj: all(check(obj) for check in checks)
