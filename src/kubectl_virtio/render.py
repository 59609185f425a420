"""One rendering layer: table, wide, markdown, json, yaml, and the PCI tree.

Tables look like kubectl's: upper-case headers, columns separated by three spaces.
"""
from __future__ import annotations

import json
import os
import re
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


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], fmt: str = "table") -> str:
    rows = [["" if c is None else c for c in r] for r in rows]
    if fmt == "markdown":
        from tabulate import tabulate  # deferred: its import reads package metadata from disk

        return tabulate(rows, headers=list(headers), tablefmt="github")
    return columns([h.upper() for h in headers], rows)


def columns(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """kubectl's table layout (its printers write through Go's text/tabwriter with a padding
    of 3): left-aligned columns three spaces apart, no trailing blanks.  Colour codes take no
    room.  This is all the layout `table` needs; tabulate (markdown) costs ~30 ms at start-up."""
    cells = [[" ".join(str(c).split("\n")) for c in r] for r in [list(headers)] + [list(r) for r in rows]]
    n = max(len(r) for r in cells)
    widths = [max((_width(r[i]) for r in cells if i < len(r)), default=0) for i in range(n)]
    return "\n".join("   ".join(c + " " * (widths[i] - _width(c)) for i, c in enumerate(r)).rstrip() for r in cells)


def _width(text: str) -> int:
    return len(_ANSI.sub("", text)) if "\x1b" in text else len(text)


def emit(stream, text: str) -> None:
    """Write one rendered block and its newline."""
    stream.write(text + "\n")


def warnings(stream, messages: Iterable[str], prefix: str = "warning: ") -> None:
    for m in messages:
        stream.write(prefix + m + "\n")


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
            "Arch:      %s%s   KubeVirt rules: %s" % (
                exp.arch, "   Machine: %s" % exp.machine if exp.machine else "",
                _rules_text(exp.kubevirt_version, getattr(exp, "kubevirt_version_source", None))),
            "useVirtioTransitional: %s   running domain: %s   restart required: %s" % (
                # origin unknown (a preference not read): the value is a guess, as list's "?" says
                "unknown (assumed %s)" % str(flag["effective"]).lower() if flag["origin"] == "unknown"
                else "%s (from %s)" % (str(flag["effective"]).lower(), flag["origin"]),
                "unknown" if flag["live"] is None else str(flag["live"]).lower(),
                "yes" if exp.restart_required else "no")]
    if exp.guest:
        g = exp.guest
        head.append("Guest OS:  %s (%s): virtio 1.0 drivers %s (%s)" % (
            g.id or ("Linux " + g.kernel_release if g.kernel_release else "unnamed"), g.source,
            {True: "yes", False: "NO", None: "unknown"}[g.virtio1], g.basis))
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


def _rules_text(release: Optional[str], source: Optional[str]) -> str:
    """`v1.6.4 (from ...)`; a release outside the rules' span names the rules shown:
    `v1.9.0 (for KubeVirt v2.3.0, from ...)`, as the finding says."""
    from kubectl_virtio import versions

    try:
        shown, warning = versions.rules_release(versions.parse(release or ""))
    except ValueError:
        warning = None
    if not warning:
        return "%s%s" % (release, _release_source(source))
    where = _release_source(source).strip(" ()")
    return "%s (for KubeVirt %s%s)" % (versions.show(shown), release, ", " + where if where else "")


def _release_source(source: Optional[str]) -> str:
    from kubectl_virtio.versions import SOURCE_TEXT

    if not source:
        return ""
    return " (newest known)" if source == "newest-known" else " (from %s)" % SOURCE_TEXT.get(source, source)


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


# --- guests --------------------------------------------------------------------------

_YES_NO = {True: "yes", False: "no", None: "unknown"}


def guest_table(rows: List[Dict[str, Any]], prov: Dict[str, Any], fmt: str = "table") -> str:
    """`kubectl virtio guests`: one row an OS, with the provenance of the verdicts."""
    if fmt in ("json", "yaml"):
        items = [{"id": r["id"], "name": r.get("name"), "aliases": r.get("aliases") or [],
                  "virtio1": r["virtio1"], "evidence": r["evidence"], "source": r["source"],
                  "vendor": r.get("vendor"), "released": r.get("released"), "eol": r.get("eol"),
                  "kernel": r.get("kernel"), "osinfo": r.get("osinfo")} for r in rows]
        return dump({"kind": "GuestOSTable", "osinfoDb": prov.get("osinfoDb"), "provenance": prov,
                     "items": items}, fmt)
    wide = fmt in ("wide", "markdown")
    headers = ["id", "name", "virtio 1.0", "source"]
    if wide:
        headers += ["aliases", "released", "eol", "kernel", "osinfo 1af4:1041 / 1000", "evidence"]
    out = []
    for r in rows:
        row = [r["id"], r.get("name") or "-", _YES_NO[r["virtio1"]], r["source"]]
        if wide:
            o = r.get("osinfo") or {}
            row += [", ".join(r.get("aliases") or []) or "-", r.get("released") or "-", r.get("eol") or "-",
                    r.get("kernel") or "-",
                    ("%s / %s" % ("yes" if o.get("virtio1") else "no", "yes" if o.get("legacy") else "no"))
                    if o else "-", r["evidence"]]
        out.append(row)
    counts = prov.get("counts") or {}
    title = ("Guest OS table from %s, %d ids: %d yes, %d no, %d unknown; %d listed by osinfo-db with virtio "
             "1.0 (1af4:1041)" % (prov.get("osinfoDbPackage") or "osinfo-db %s" % prov.get("osinfoDb"),
                                  counts.get("ids", 0), counts.get("yes", 0), counts.get("no", 0),
                                  counts.get("unknown", 0), counts.get("osinfoVirtio1", 0)))
    md = fmt == "markdown"
    parts = [("### " if md else "") + title, table(headers, out, "markdown" if md else "table")]
    if wide:
        krow = [[k["ids"], k["kernel"], k["source"]] for k in prov.get("kernels") or []]
        rule = prov.get("kernelRule") or {}
        parts.append(("### " if md else "") + "Curated kernels (a kernel decides when osinfo-db is silent; "
                     "the modern virtio-pci driver: %s)" % rule.get("source"))
        parts.append(table(["ids", "kernel", "source"], krow, "markdown" if md else "table"))
    else:
        parts.append("Verdicts: osinfo-db's virtio 1.0 entries, else the distribution's kernel (%d curated "
                     "entries), else unknown; -o wide shows the evidence and the kernel sources."
                     % len(prov.get("kernels") or []))
    return "\n\n".join(parts)


# --- list: the fleet report, streamed -------------------------------------------------------

# json.dumps' defaults, without the check for reference cycles: a row's to_dict() is fresh
# dicts and lists of plain values, and the check cost some 15% of encoding each row.
_encode_row = json.JSONEncoder(check_circular=False).encode


class FleetPrinter:
    """Prints fleet rows as they come: JSON and YAML item by item (the summary last), tables in
    chunks whose column widths come from the first chunk (as kubectl prints a paged list), so
    nothing waits for the whole fleet and nothing holds it."""

    def __init__(self, fmt: str = "table", no_headers: bool = False, out=None, chunk: int = 64):
        from kubectl_virtio import fleet

        self.fleet = fleet
        self.fmt, self.no_headers, self.chunk = fmt, no_headers, chunk
        self.out = out or sys.stdout
        self.wide = fmt == "wide"
        self.headers = fleet.WIDE_HEADERS if self.wide else fleet.HEADERS
        self.widths: Optional[List[int]] = None
        self.pending: List[List[str]] = []
        self.count = 0
        # On a terminal each row shows as soon as it is ready; into a pipe or a file the
        # stream's own buffer decides (a flush a row was a write(2) a row), close() flushes.
        try:
            self.interactive = bool(self.out.isatty())
        except (AttributeError, ValueError):
            self.interactive = False

    def _write(self, text: str) -> None:
        self.out.write(text)
        if self.interactive:
            self.out.flush()

    def add(self, row) -> None:
        if self.fmt == "json":
            # One item a line: the C encoder (indent= would use the pure-Python one, 10x slower).
            self._write(("{\n  \"kind\": \"VirtioFleetReport\",\n  \"items\": [\n" if self.count == 0 else ",\n")
                        + "    " + _encode_row(row.to_dict()))
        elif self.fmt == "yaml":
            import yaml

            body = yaml.safe_dump([row.to_dict()], sort_keys=False, default_flow_style=False, width=100)
            self._write(("kind: VirtioFleetReport\nitems:\n" if self.count == 0 else "") + body)
        else:
            self.pending.append(self.fleet.cells(row, self.wide))
            if len(self.pending) >= self.chunk:
                self._flush_table()
        self.count += 1

    def _flush_table(self) -> None:
        if not self.pending:
            return
        md = self.fmt == "markdown"
        if self.widths is None:
            heads = list(self.headers) if md else [h.upper() for h in self.headers]
            self.widths = [max(len(h), *(len(r[i]) for r in self.pending)) for i, h in enumerate(heads)]
            if not self.no_headers:
                self._write(self._line(heads) + "\n")
                if md:
                    self._write("|" + "|".join("-" * (w + 2) for w in self.widths) + "|\n")
        self._write("".join(self._line(r) + "\n" for r in self.pending))
        self.pending = []

    def _line(self, cells: List[str]) -> str:
        cells = [c.replace("|", "\\|") for c in cells] if self.fmt == "markdown" else cells
        padded = [c.ljust(w) for c, w in zip(cells, self.widths or [])]
        if self.fmt == "markdown":
            return "| " + " | ".join(padded) + " |"
        return "   ".join(padded).rstrip()

    def close(self, summary: Dict[str, Any]) -> None:
        if self.fmt == "json":
            head = "{\n  \"kind\": \"VirtioFleetReport\",\n  \"items\": [" if self.count == 0 else "\n  ],"
            if self.count == 0:
                head += "],"
            text = json.dumps(summary, indent=2)
            self._write(head + "\n  \"summary\": " + "\n".join(
                ("  " + line if i else line) for i, line in enumerate(text.splitlines())) + "\n}\n")
        elif self.fmt == "yaml":
            import yaml

            self._write(("kind: VirtioFleetReport\nitems: []\n" if self.count == 0 else "")
                        + yaml.safe_dump({"summary": summary}, sort_keys=False, default_flow_style=False))
        else:
            self._flush_table()
        self.out.flush()


# --- notes and the fleet view ----------------------------------------------------------

def notes(stream, items, prefix: str = "") -> None:
    """Resolution notes (severity, message) as `warning: ...` lines."""
    for n in items:
        stream.write("%s%s: %s\n" % (prefix, n.severity, n.message))


# --- set-transitional -------------------------------------------------------------------

def preview(header: Sequence[str], rows: Sequence[Sequence[str]], steps: Sequence[str], running: bool) -> str:
    """The per-device preview of set-transitional, as a table (stdout)."""
    parts = ["\n".join(header) + "\n" +
             table(["kind", "name", "running now" if running else "model now", "after next start", "note"], rows)]
    parts += list(steps)
    return "\n" + "\n\n".join(parts)


def preview_compact(ref: str, header: Sequence[str], rows: Sequence[Sequence[str]], steps: Sequence[str]) -> str:
    """The same in a few lines, for stderr when stdout holds -o json|yaml."""
    moved = [r for r in rows if r[2] != r[3] or r[4].startswith("depends")]
    lines = ["preview %s: %s" % (ref, "; ".join(header))]
    lines += ["  %s %s: %s -> %s (%s)" % tuple(r) for r in moved]
    lines.append("  %d device(s) change at the next start, %d do not" % (len(moved), len(rows) - len(moved)))
    lines += list(steps)
    return "\n".join(lines)


def patch_summary(total: int, counts: Dict[str, int]) -> str:
    line = "%d VM(s): %d patched, %d unchanged, %d failed" % (total, counts.get("patched", 0),
                                                              counts.get("unchanged", 0), counts.get("failed", 0))
    if counts.get("restart failed"):
        line += ", %d restart(s) failed" % counts["restart failed"]
    return line


def error_lines(message: str, hint: str = "", where: str = "") -> str:
    text = "error: %s%s" % (where + ": " if where else "", message)
    return text + ("\n" + hint if hint else "")
