"""Server-side printing: the meta.k8s.io/v1 Table that `kubectl get` asks for.

kubectl sends `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...` and prints the
columns the server chooses.  The columns below follow what a real cluster shows: KubeVirt's
CRD printer columns for VMs/VMIs, the built-in printers for pods and controller revisions,
and Name + Age for anything else.
"""
from __future__ import annotations

import datetime

from .resources import Resource


def parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def human_duration(delta: datetime.timedelta) -> str:
    """Short ages as kubectl prints them: 45s, 3m12s, 95m, 5h3m, 30h, 3d4h, 120d, 2y10d."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        seconds = 0
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m{s}s" if s else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        m = minutes % 60
        return f"{hours}h{m}m" if m else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{days}d{h}h" if h else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if days < 365 * 8:
        d = days % 365
        return f"{years}y{d}d" if d else f"{years}y"
    return f"{years}y"


def age(obj: dict, now: datetime.datetime) -> str:
    created = parse_time(obj.get("metadata", {}).get("creationTimestamp"))
    return human_duration(now - created) if created else "<unknown>"


def _condition(obj: dict, kind: str) -> str:
    for c in obj.get("status", {}).get("conditions") or []:
        if c.get("type") == kind:
            return c.get("status", "")
    return ""


def _col(name: str, type_: str = "string", priority: int = 0, fmt: str = "", description: str = "") -> dict:
    return {"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}


_NAME = _col("Name", fmt="name", description="Name must be unique within a namespace.")
_AGE = _col("Age", "date", description="CreationTimestamp is a timestamp representing the server time "
                                        "when this object was created.")


def _vm_columns():
    return [_NAME, _AGE, _col("Status", description="Human readable status"), _col("Ready")]


def _vm_cells(obj, now):
    st = obj.get("status", {})
    return [obj["metadata"]["name"], age(obj, now), st.get("printableStatus", ""), _condition(obj, "Ready")]


def _vmi_columns():
    return [_NAME, _AGE, _col("Phase"), _col("IP"), _col("NodeName"), _col("Ready"),
            _col("Live-Migratable", priority=1), _col("Paused", priority=1)]


def _vmi_cells(obj, now):
    st = obj.get("status", {})
    ifaces = st.get("interfaces") or [{}]
    return [obj["metadata"]["name"], age(obj, now), st.get("phase", ""), ifaces[0].get("ipAddress", ""),
            st.get("nodeName", ""), _condition(obj, "Ready"), _condition(obj, "LiveMigratable"),
            _condition(obj, "Paused")]


def _pod_columns():
    return [_NAME, _col("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
            _col("Status", description="The aggregate status of the containers in this pod."),
            _col("Restarts", description="The number of times the containers in this pod have been restarted."),
            _AGE, _col("IP", priority=1), _col("Node", priority=1), _col("Nominated Node", priority=1),
            _col("Readiness Gates", priority=1)]


def _pod_cells(obj, now):
    spec, st = obj.get("spec", {}), obj.get("status", {})
    statuses = st.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    return [obj["metadata"]["name"], f"{ready}/{len(spec.get('containers') or [])}",
            st.get("reason") or st.get("phase", ""), restarts, age(obj, now), st.get("podIP") or "<none>",
            spec.get("nodeName") or "<none>", st.get("nominatedNodeName") or "<none>", "<none>"]


def _revision_columns():
    return [_NAME, _col("Controller"), _col("Revision", "integer"), _AGE]


def _revision_cells(obj, now):
    owners = obj.get("metadata", {}).get("ownerReferences") or []
    controller = next((o for o in owners if o.get("controller")), None)
    ref = f"{controller['kind'].lower()}.{controller['apiVersion'].split('/')[0]}/{controller['name']}" \
        if controller else "<none>"
    return [obj["metadata"]["name"], ref, obj.get("revision", 0), age(obj, now)]


_PRINTERS = {
    "virtualmachines": (_vm_columns, _vm_cells),
    "virtualmachineinstances": (_vmi_columns, _vmi_cells),
    "pods": (_pod_columns, _pod_cells),
    "controllerrevisions": (_revision_columns, _revision_cells),
}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def _row_object(obj: dict, include: str) -> dict | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def to_table(resource: Resource, objects: list[dict], resource_version: str, include_object: str = "Metadata",
             now: datetime.datetime | None = None) -> dict:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    columns, cells = _PRINTERS.get(resource.plural, (lambda: [_NAME, _AGE],
                                                     lambda o, n: [o["metadata"]["name"], age(o, n)]))
    rows = []
    for obj in objects:
        row = {"cells": cells(obj, now)}
        row_obj = _row_object(obj, include_object or "Metadata")
        if row_obj is not None:
            row["object"] = row_obj
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": columns(), "rows": rows}
