"""One rendering layer: table, wide, markdown, json, yaml, and the PCI tree.

Tables look like kubectl's: upper-case headers, columns separated by three spaces.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, Iterable, List, Optional, Sequence


OUTPUTS = ("table", "wide", "json", "yaml", "markdown")

_COLORS = {"match": "32", "drift": "33", "unexpected": "31", "predicted": "36", "not-virtio": "2",
           "error": "31", "warning": "33", "info": "36"}


def use_color(stream=None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def paint(text: str, key: str, color: bool) -> str:
    code = _COLORS.get(key)
    return "\033[%sm%s\033[0m" % (code, text) if color and code else text


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], fmt: str = "table") -> str:
    from tabulate import tabulate, TableFormat, DataRow  # deferred: 50 ms of import

    rows = [["" if c is None else c for c in r] for r in rows]
    if fmt == "markdown":
        return tabulate(rows, headers=list(headers), tablefmt="github")
    kubectl = TableFormat(lineabove=None, linebelowheader=None, linebetweenrows=None, linebelow=None,
                          headerrow=DataRow("", "   ", ""), datarow=DataRow("", "   ", ""), padding=0,
                          with_header_hide=None)
    text = tabulate(rows, headers=[h.upper() for h in headers], tablefmt=kubectl, disable_numparse=True,
                    stralign="left")
    return "\n".join(line.rstrip() for line in text.splitlines())


def dump(obj: Dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(obj, indent=2)
    import yaml

    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=100).rstrip("\n")


# --- explain ---------------------------------------------------------------------------

_QUIET_KINDS = ("serial", "console", "graphics", "channel", "audio")


def explanation(exp, fmt: str = "table", pci: bool = False, color: Optional[bool] = None) -> str:
    if fmt in ("json", "yaml"):
        return dump(exp.to_dict(), fmt)
    color = use_color() if color is None else color
    wide = fmt == "wide"
    md = fmt == "markdown"
    devices = exp.devices if (wide or md) else [
        d for d in exp.devices if not d.added_by_libvirt and d.kind not in _QUIET_KINDS]
    if wide:
        headers = ["kind", "name", "target", "bus", "model", "expected", "status", "variant", "pci", "rule",
                   "qemu device"]
        rows = [[d.kind, d.name, d.target, d.bus, d.model or "-", d.expected or "-",
                 paint(d.status, d.status, color), d.variant or "-", _pci(d), d.rule or "-", d.qemu_device or "-"]
                for d in devices]
    else:
        headers = ["kind", "name", "model", "expected", "status", "variant", "rule"]
        rows = [[d.kind, d.name, d.model or "-", d.expected or "-", paint(d.status, d.status, md is False and color),
                 d.variant or "-", d.rule or "-"] for d in devices]
    flag = exp.to_dict()["useVirtioTransitional"]
    head = ["VM:        %s" % ("%s/%s" % (exp.namespace, exp.name) if exp.namespace else (exp.name or "(unnamed)")),
            "Arch:      %s%s   KubeVirt rules: %s" % (exp.arch, "   Machine: %s" % exp.machine if exp.machine else "",
                                                      exp.kubevirt_version),
            "useVirtioTransitional: %s (from %s)   running domain: %s   restart required: %s" % (
                str(flag["effective"]).lower(), flag["origin"],
                "unknown" if flag["live"] is None else str(flag["live"]).lower(),
                "yes" if exp.restart_required else "no")]
    if exp.guest:
        head.append("Guest OS:  %s (%s): virtio 1.0 drivers %s" % (
            exp.guest.id, exp.guest.source, {True: "yes", False: "NO", None: "unknown"}[exp.guest.virtio1]))
    parts = []
    if md:
        import re

        parts.append("\n".join("- " + re.sub(r"\s{3,}", "; ", re.sub(r":\s{2,}", ": ", h)) for h in head))
    else:
        parts.append("\n".join(head))
    parts.append(table(headers, rows, "markdown" if md else "table"))
    parts.append(("**Verdict:** " if md else "Verdict: ") + exp.verdict)
    findings = [f for f in exp.findings if not f.verdict]  # the verdict has its own line
    if findings:
        lines = []
        for f in findings:
            sev = paint(f.severity, f.severity, color and not md)
            lines.append(("- %s: %s" if md else "  %s: %s") % (sev, f.message))
        parts.append(("**Findings**\n" if md else "Findings:\n") + "\n".join(lines))
    if wide or md:
        parts.append(("**Why**\n" if md else "Why:\n") + "\n".join(
            ("- `%s %s`: %s" if md else "  %s %s: %s") % (d.kind, d.name, d.reason) for d in devices
            if not d.added_by_libvirt and d.kind not in _QUIET_KINDS))
    if pci and exp.domain is not None:
        parts.append("PCI topology:\n" + pci_tree(exp.domain))
    elif pci:
        # libvirt, not KubeVirt, assigns the slots: without a domain there is no topology to draw
        parts.append("PCI topology: none to draw without a domain XML (libvirt assigns the slots): pass "
                     "--dumpxml, or explain a running VM")
    return "\n\n".join(parts)


def _pci(d) -> str:
    if not d.address:
        return "-"
    return d.address + (" (%s)" % d.parent if d.parent else "")


# --- PCI tree --------------------------------------------------------------------------

def pci_tree(dom) -> str:
    """The domain's PCI topology: root complex, root ports, bridges, and who sits where."""
    from kubectl_virtio import domain as D  # deferred: `table` never draws a tree

    controllers = dom.pci_controllers()
    children: Dict[int, List] = {}
    for dev in dom.devices:
        a = dev.address
        if a is None or a.type != "pci" or a.bus is None:
            continue
        children.setdefault(a.bus, []).append(dev)
    for lst in children.values():
        lst.sort(key=lambda d: (d.address.slot or 0, d.address.function or 0))
    if not controllers:
        ccw = [d for d in dom.devices if d.address is not None and d.address.type == "ccw"]
        if ccw:
            return "\n".join(["ccw (s390x channel subsystem; no PCI)"] + [
                "%s %s %s [%s]" % ("└──" if i == len(ccw) - 1 else "├──", d.address, _label(d), d.variant or "-")
                for i, d in enumerate(ccw)])
        return "(no PCI addresses in this XML: was it dumped from a defined domain?)"
    roots = [c for c in controllers.values() if c.address is None or c.address.type != "pci"]
    lines: List[str] = []

    def walk(ctrl_index: int, prefix: str):
        kids = children.get(ctrl_index, [])
        for i, dev in enumerate(kids):
            last = i == len(kids) - 1
            lines.append(prefix + ("└── " if last else "├── ") + "%02x.%x %s" % (
                dev.address.slot or 0, dev.address.function or 0, _label(dev)))
            if dev.kind == "controller" and dev.type == "pci" and dev.index is not None:
                if not children.get(dev.index) and dev.model in D.PCIE_PORTS:
                    lines[-1] += "  (empty: spare for hotplug)"
                walk(dev.index, prefix + ("    " if last else "│   "))

    for r in roots:
        lines.append("bus %02x: %s (index %s)" % (r.index or 0, r.model or "pci", r.index))
        walk(r.index, "")
    return "\n".join(lines)


def _label(dev) -> str:
    if dev.kind == "controller" and dev.type == "pci":
        return "%s (bus %02x)" % (dev.model, dev.index or 0)
    what = "%s %s" % (dev.kind, dev.name)
    if dev.virtio:
        return "%s  %s -> %s" % (what, dev.model or "(no model)", dev.variant or "?")
    return "%s%s" % (what, "  " + dev.model if dev.model else "")


# --- table -----------------------------------------------------------------------------

def translate_table(rows: List[Dict[str, Any]], meta: Dict[str, Any], fmt: str = "table") -> str:
    if fmt in ("json", "yaml"):
        return dump(dict(meta, rows=rows), fmt)
    wide = fmt == "wide"
    headers = ["id", "device", "spec condition", "unset / false", "true"]
    if wide:
        headers += ["kubevirt versions", "qemu device (false | true)", "libvirt slot -> variant (false | true)",
                    "kubevirt source per release span (file function @tag read)", "why"]
    out = []
    for r in rows:
        row = [r["id"], r["kind"], r["condition"], r["whenFalse"] or "(no model)", r["whenTrue"] or "(no model)"]
        if wide:
            row += [r["versions"], _both(r, _qemu_text), _both(r, _slot_text), r.get("sourcesText") or r["source"],
                    r["reason"]]
        out.append(row)
    title = "KubeVirt %s translate table, arch %s (spec.domain.devices.useVirtioTransitional)" % (
        meta["kubevirtVersion"], meta["arch"])
    body = table(headers, out, "markdown" if fmt == "markdown" else "table")
    return ("### " + title if fmt == "markdown" else title) + "\n\n" + body


_SHORT_SLOT = (("pcie-to-pci-bridge", "pci bridge"), ("pcie-root-port", "root port"), ("pci-root", "pci-root"),
               ("ccw", "ccw"))


def _qemu_text(c) -> str:
    return c["qemuDevice"]


def _slot_text(c) -> str:
    """`q35: root port -> modern-only, i440fx: pci-root -> modern-only`."""
    parts = []
    for machine, m in c["machines"].items():
        slot = next((short for key, short in _SHORT_SLOT if key in m["slot"]), m["slot"])
        parts.append("%s: %s -> %s" % (machine, slot, m["variant"]))
    return ", ".join(parts)


def _both(row, text) -> str:
    """One cell for the flag's two values; a single value when they agree."""
    false, true = row["libvirt"]["false"], row["libvirt"]["true"]
    if false is None:
        return "-"
    a, b = text(false), text(true)
    return a if a == b else "%s | %s" % (a, b)
