"""Read a libvirt domain XML (`virsh dumpxml`) into device records.

The reader never trusts its input: no DOCTYPE, no entities, no network, bounded size.
It resolves the effective virtio variant of every device from its model and, for plain
`virtio`, from the PCI controller its slot is on (docs/libvirt.md §1.4), and it marks the
devices libvirt added on its own (docs/kubevirt.md appendix, step 4).

The live XML and any input that starts as a domain XML (`<domain`) are read strictly: a
truncated or garbled document is an error, never half an answer.  Only input that is
evidently a fragment (`virsh dumpxml 1 | grep virtio` pasted into a bug report, one device
element) is read leniently, line by line, with bounded output; the result says it is partial.
"""
from __future__ import annotations

import io
import re
from typing import Dict, List, Optional

from kubectl_virtio.errors import InputError
from kubectl_virtio.record import Record

MAX_BYTES = 8 * 1024 * 1024  # a real domain is 5-50 KiB; anything near this is not a dumpxml

# PCI controllers whose slots make a plain-virtio device modern-only (QEMU virtio_pci_realize:
# a PCIe port that is not a root bus), and the ones whose slots make it transitional.
PCIE_PORTS = {"pcie-root-port", "pcie-switch-downstream-port"}
CONVENTIONAL_BUSES = {"pci-root", "pcie-root", "pci-bridge", "pcie-to-pci-bridge", "dmi-to-pci-bridge",
                      "pcie-expander-bus", "pci-expander-bus"}
# Device kinds that are virtio 1.0 whatever their model (QEMU virtio_pci_force_virtio_1).
USER_ALIAS = "ua-"
ALIAS_PREFIXES = ("sriov-", "gpu-", "hostdevice-")


class Address(Record):
    __slots__ = _fields = ("type", "bus", "slot", "function", "domain", "devno", "controller")

    def __init__(self, type: str, bus: Optional[int] = None, slot: Optional[int] = None,
                 function: Optional[int] = None, domain: Optional[int] = None,
                 devno: Optional[str] = None,  # ccw
                 controller: Optional[int] = None):  # drive / virtio-serial
        self.type, self.bus, self.slot, self.function = type, bus, slot, function
        self.domain, self.devno, self.controller = domain, devno, controller

    def __str__(self) -> str:
        if self.type == "pci" and self.bus is not None:
            return "%04x:%02x:%02x.%x" % (self.domain or 0, self.bus, self.slot or 0, self.function or 0)
        if self.type == "ccw":
            return "ccw %s" % (self.devno or "?")
        return self.type


class Device(Record):
    __slots__ = _fields = ("kind", "name", "type", "device", "bus", "target", "model", "alias", "address", "index",
                           "parent_model", "variant", "virtio", "added_by_libvirt", "driver", "line")

    def __init__(self, kind: str,  # libvirt element name: disk, controller, interface, memballoon, ...
                 name: str,  # KubeVirt name (from ua-<name>) or libvirt type + index
                 type: Optional[str] = None,  # the element's type attribute (controller type, disk type, ...)
                 device: Optional[str] = None,  # disk: disk | cdrom | lun
                 bus: Optional[str] = None,
                 target: Optional[str] = None,
                 model: Optional[str] = None,
                 alias: Optional[str] = None,
                 address: Optional[Address] = None,
                 index: Optional[int] = None,  # controllers
                 parent_model: Optional[str] = None,  # model of the PCI controller the device is plugged into
                 variant: Optional[str] = None,  # transitional | modern-only | ccw | legacy-only | invalid-on-ccw
                 virtio: bool = False,
                 added_by_libvirt: bool = False,
                 driver: Optional[str] = None,  # filesystem driver type, interface driver name
                 line: Optional[int] = None):
        self.kind, self.name, self.type, self.device, self.bus = kind, name, type, device, bus
        self.target, self.model, self.alias, self.address, self.index = target, model, alias, address, index
        self.parent_model, self.variant, self.virtio = parent_model, variant, virtio
        self.added_by_libvirt, self.driver, self.line = added_by_libvirt, driver, line

    @property
    def key(self):
        return self.kind, self.name


class Domain(Record):
    __slots__ = _fields = ("name", "uuid", "virt_type", "arch", "machine", "devices", "partial")

    def __init__(self, name: Optional[str] = None, uuid: Optional[str] = None, virt_type: Optional[str] = None,
                 arch: Optional[str] = None,  # libvirt's name: x86_64, aarch64, s390x
                 machine: Optional[str] = None,  # as written: pc-q35-7.2
                 devices: Optional[List[Device]] = None, partial: bool = False):
        self.name, self.uuid, self.virt_type, self.arch, self.machine = name, uuid, virt_type, arch, machine
        self.devices = devices if devices is not None else []
        self.partial = partial

    @property
    def machine_family(self) -> Optional[str]:
        return machine_family(self.machine)

    def pci_controllers(self) -> Dict[int, Device]:
        return {d.index: d for d in self.devices
                if d.kind == "controller" and d.type == "pci" and d.index is not None}


def machine_family(machine: Optional[str]) -> Optional[str]:
    if not machine:
        return None
    m = machine.lower()
    if "q35" in m:
        return "q35"
    if m == "pc" or "i440fx" in m or re.match(r"pc-\d", m):
        return "i440fx"
    if m.startswith("virt"):
        return "virt"
    if m.startswith("s390-ccw"):
        return "s390-ccw-virtio"
    return m


def old_machine(machine: Optional[str]) -> bool:
    """Machine types <= 2.6 make plain virtio legacy-only (QEMU hw_compat_2_6)."""
    m = re.search(r"-(\d+)\.(\d+)$", machine or "")
    return bool(m) and (int(m.group(1)), int(m.group(2))) <= (2, 6)


# --- Parsing ------------------------------------------------------------------------------

# A real domain has a few hundred to a few thousand elements (5-50 KiB, a few hundred KiB with
# hundreds of disks).  Counting '<' first keeps lxml from building a tree of millions of nodes
# (8 MiB of `<a/>` is 2 million elements and ~270 MB) for input that cannot be a domain.
MAX_ELEMENTS = 100_000
# The line reader keeps at most this many devices (a domain has tens, at most a few hundred)
# and reads at most this many lines (a whole domain with 256 disks has a few thousand).
MAX_FRAGMENT_DEVICES = 2_000
MAX_FRAGMENT_LINES = 50_000
MAX_ECHO = 120  # characters of input (or of a parser message about it) an error may quote

_WHOLE_RE = re.compile(r"\A(?:\ufeff)?\s*(?:<\?xml[^>]{0,200}\?>\s*)?(?:<!--.{0,2000}?-->\s*)*<domain[\s>/]", re.S)


def clip(text, limit: int = MAX_ECHO) -> str:
    """`text` cut to `limit` characters for an error message (never echo unbounded input)."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "... (%d characters)" % len(text)


def is_whole_document(text: str) -> bool:
    """True when the text starts as a domain XML does (`<domain`, after an optional XML
    declaration or comments); anything else is a fragment such as pasted `grep virtio` lines."""
    return bool(_WHOLE_RE.match(text[:8192]))


def parse(text, source: str = "domain XML", fragment: bool = False) -> Domain:
    """Parse `virsh dumpxml` output.  Raises InputError with a user-facing message.

    fragment=False (the live XML): the input must be one whole, well-formed <domain>.
    fragment=True (a file the user gave): a whole document is still read strictly; only input
    that does not start as a domain XML (grep output, one device element) is read leniently,
    and the result is marked partial."""
    if isinstance(text, bytes):
        raw = text
        text = text.decode("utf-8", errors="replace")
    else:
        raw = text.encode("utf-8", errors="replace")
    if len(raw) > MAX_BYTES:
        raise InputError("%s is %d bytes; a domain XML is far smaller (limit %d)" % (source, len(raw), MAX_BYTES))
    if re.search(r"<!\s*(DOCTYPE|ENTITY)", text, re.IGNORECASE):
        raise InputError("%s has a DOCTYPE or entity declarations; virsh dumpxml never writes them, "
                         "so it is refused (pass the plain `virsh dumpxml` output)" % source)
    if not text.strip():
        raise InputError("%s is empty" % source)
    whole = is_whole_document(text)
    if fragment and not whole:
        return _parse_fragment(text, raw, source)
    if raw.count(b"<") > MAX_ELEMENTS:
        raise InputError("%s has more than %d elements; a domain XML has a few thousand at most"
                         % (source, MAX_ELEMENTS))

    from lxml import etree  # deferred: `table` and `--help` never need it

    try:
        root = etree.fromstring(raw.lstrip(), _parser())
    except (etree.LxmlError, ValueError) as e:
        if not whole and not fragment:
            raise InputError("%s is not a domain XML: it does not start with <domain> (%s)"
                             % (source, _xml_problem(e)),
                             "pass the whole `virsh dumpxml` output") from None
        raise InputError("%s is not a whole domain XML: %s (truncated or garbled?)" % (source, _xml_problem(e)),
                         "pass the complete `virsh dumpxml` output; a pasted fragment (such as `grep virtio` "
                         "lines) is read leniently only when it does not start with <domain>") from None
    if root.getroottree().docinfo.doctype:
        raise InputError("%s has a DOCTYPE; refused" % source)
    if root.tag != "domain":
        raise InputError("%s has root element <%s>, not <domain>: is it a `virsh dumpxml` output?"
                         % (source, clip(root.tag, 60)))
    # One walk over the top level instead of a find() per element read (as find: the first
    # <name>, <uuid> and <devices>, and the first <type> of an <os>).
    top: Dict[object, object] = {}
    ostype = None
    for c in root:
        tag = c.tag
        if tag not in top:
            top[tag] = c
        if ostype is None and tag == "os":
            for t in c:
                if t.tag == "type":
                    ostype = t
                    break
    dom = Domain(name=_stripped(top.get("name")), uuid=_stripped(top.get("uuid")), virt_type=root.get("type"))
    if ostype is not None:
        dom.arch, dom.machine = ostype.get("arch"), ostype.get("machine")
    devices = top.get("devices")
    _read_devices(dom, list(devices) if devices is not None else [])
    return dom


def _parser():
    from lxml import etree

    # No entities, no DTD, no network; huge_tree=False keeps libxml2's depth (256) and
    # text-node limits.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=True, remove_pis=True)


def _xml_problem(e) -> str:
    msg = re.sub(r" \(<string>, line \d+\)$", "", str(e).splitlines()[0] if str(e) else "unreadable XML")
    if "Excessive depth" in msg:
        return "nested more than 256 elements deep"
    return clip(msg)


def _parse_fragment(text: str, raw: bytes, source: str) -> Domain:
    """A fragment: one device element parsed strictly if it is well-formed XML, else the
    line reader."""
    if raw.count(b"\n") > MAX_FRAGMENT_LINES:
        raise InputError("%s has more than %d lines and does not start with <domain>: a fragment of a domain "
                         "XML has far fewer" % (source, MAX_FRAGMENT_LINES), "pass the whole `virsh dumpxml` output")
    stripped = raw.strip()
    if stripped.startswith(b"<") and raw.count(b"<") <= MAX_ELEMENTS:
        from lxml import etree

        try:
            root = etree.fromstring(stripped, _parser())
        except (etree.LxmlError, ValueError):
            root = None
        if root is not None and root.tag in _DEVICE_KINDS:
            # A single device element (<disk ...>...</disk>) is still worth explaining.
            dom = Domain(partial=True)
            _read_devices(dom, [root])
            return dom
        if root is not None and root.tag != "devices":
            raise InputError("%s has root element <%s>, not <domain>: is it a `virsh dumpxml` output?"
                             % (source, clip(root.tag, 60)))
    dom = _parse_lines(text, source)
    if dom is None:
        raise InputError("%s is not a domain XML and has no device element lines to read "
                         "(such as `<disk ...>` or `<model type='virtio'/>`)" % source,
                         "pass the whole `virsh dumpxml` output") from None
    return dom


def _stripped(found) -> Optional[str]:
    return found.text.strip() if found is not None and found.text else None


_DEVICE_KINDS = {"disk", "controller", "interface", "memballoon", "rng", "input", "video", "vsock", "filesystem",
                 "serial", "console", "channel", "graphics", "audio", "sound", "watchdog", "tpm", "panic",
                 "memory", "hostdev", "redirdev", "iommu", "smartcard", "shmem", "lease", "hub"}


def _int(v: Optional[str]) -> Optional[int]:
    if v is None:
        return None
    try:
        return int(v, 0)
    except ValueError:
        return None


# The fields of an Address per distinct tuple of <address> attributes: a fleet's domains have
# a few hundred distinct ones (PCI bus/slot pairs, drive units).  Each device still gets an
# Address of its own; emptied when it reaches _ADDRESSES_KEPT entries.
_ADDRESSES: Dict[tuple, tuple] = {}
_ADDRESSES_KEPT = 4096


def _address(a) -> Optional[Address]:
    """The device's <address> element as an Address (None: it has none)."""
    if a is None:
        return None
    key = tuple(a.items())
    fields = _ADDRESSES.get(key)
    if fields is None:
        get = a.get
        fields = (get("type") or "?", _int(get("bus")), _int(get("slot")), _int(get("function")),
                  _int(get("domain")), get("devno"), _int(get("controller")))
        if len(_ADDRESSES) >= _ADDRESSES_KEPT:
            _ADDRESSES.clear()
        _ADDRESSES[key] = fields
    return Address(*fields)  # type, bus, slot, function, domain, devno, controller


def _first_children(el) -> Dict[object, object]:
    """tag -> the first child element with that tag, as el.find(tag) gives it, in one walk
    over the children (find() costs a path lookup each, and a device asks up to five)."""
    first: Dict[object, object] = {}
    for c in el:
        tag = c.tag
        if tag not in first:
            first[tag] = c
    return first


def _read_devices(dom: Domain, elements) -> None:
    counters: Dict[str, int] = {}
    for el in elements:
        if not isinstance(el.tag, str) or el.tag == "emulator":
            continue
        dev = _device_from_element(el)
        _name_device(dev, counters)
        dom.devices.append(dev)
    resolve(dom)


def _device_from_element(el) -> Device:
    kind = el.tag
    children = _first_children(el)
    alias_el = children.get("alias")
    target = children.get("target")
    dev = Device(kind=kind, name="", type=el.get("type"), alias=alias_el.get("name") if alias_el is not None else None,
                 address=_address(children.get("address")), line=el.sourceline)
    model_child = children.get("model")
    if kind == "disk":
        dev.device = el.get("device") or "disk"
        dev.model = el.get("model")
        if target is not None:
            dev.bus, dev.target = target.get("bus"), target.get("dev")
    elif kind == "interface":
        dev.model = model_child.get("type") if model_child is not None else None
        driver = children.get("driver")
        dev.driver = driver.get("name") if driver is not None else None
    elif kind == "video":
        dev.model = model_child.get("type") if model_child is not None else None
    elif kind == "controller":
        dev.model = el.get("model")
        dev.index = _int(el.get("index"))
    elif kind == "filesystem":
        dev.model = el.get("model")
        driver = children.get("driver")
        dev.driver = driver.get("type") if driver is not None else None
        if target is not None:
            dev.target = target.get("dir")
    elif kind in ("input", "channel", "serial", "console"):
        dev.model = el.get("model")
        dev.bus = el.get("bus")
        if target is not None:
            dev.target = target.get("name") or target.get("type")
    else:
        dev.model = el.get("model")
    return dev


def _name_device(dev: Device, counters: Dict[str, int]) -> None:
    if dev.alias and dev.alias.startswith(USER_ALIAS):
        name = dev.alias[len(USER_ALIAS):]
        if dev.kind == "hostdev":  # ua-sriov-<iface>, ua-gpu-<name>, ua-hostdevice-<name>
            for p in ALIAS_PREFIXES:
                if name.startswith(p):
                    name = name[len(p):]
        dev.name = name
        return
    if dev.kind == "controller":
        dev.name = "%s%s" % (dev.type or "controller", dev.index if dev.index is not None else "")
        return
    if dev.kind == "filesystem" and dev.driver == "virtiofs" and dev.target:
        dev.name = dev.target  # KubeVirt uses the filesystem's name as the target dir
        return
    base = dev.type if dev.kind == "input" and dev.type else dev.kind
    n = counters.get(base, 0)
    counters[base] = n + 1
    dev.name = "%s%d" % (base, n)


def is_virtio(dev: Device) -> bool:
    m = dev.model or ""
    if dev.kind == "disk":
        return dev.bus == "virtio"
    if dev.kind == "controller":
        return dev.type in ("virtio-serial",) or (dev.type == "scsi" and (m.startswith("virtio") or not m))
    if dev.kind in ("interface", "memballoon", "rng", "vsock"):
        return m.startswith("virtio")
    if dev.kind == "input":
        return dev.bus == "virtio"
    if dev.kind == "video":
        return m == "virtio"
    if dev.kind == "filesystem":
        return dev.driver == "virtiofs" or m.startswith("virtio") or dev.driver in (None, "path", "handle")
    if dev.kind == "memory":
        return m.startswith("virtio")
    return False


def always_modern(dev: Device) -> bool:
    return ((dev.kind == "input" and dev.bus == "virtio") or (dev.kind == "video" and dev.model == "virtio")
            or (dev.kind == "filesystem" and dev.driver == "virtiofs") or dev.kind in ("vsock", "memory"))


def _added_by_libvirt(dev: Device) -> bool:
    if dev.alias and dev.alias.startswith(USER_ALIAS):
        return False
    if dev.kind == "controller":
        # KubeVirt writes its virtio-serial controller with a model; a model-less one is
        # libvirt's, added for the guest-agent channel when autoattachSerialConsole is false.
        return dev.type in ("pci", "sata", "ide", "fdc") or (dev.type == "virtio-serial" and not dev.model)
    if dev.kind == "input":
        return dev.bus == "ps2"
    return dev.kind in ("audio",)


def resolve(dom: Domain) -> None:
    """Fill in virtio, added-by-libvirt, parent controller and effective variant."""
    pci = dom.pci_controllers()
    old = old_machine(dom.machine)
    # s390-ccw-virtio puts virtio devices on the channel subsystem: a pasted fragment without
    # <address> lines is still ccw there (docs/libvirt.md §1.5).
    ccw_machine = dom.arch == "s390x" or dom.machine_family == "s390-ccw-virtio"
    for dev in dom.devices:
        dev.virtio = is_virtio(dev)
        dev.added_by_libvirt = _added_by_libvirt(dev)
        addr = dev.address
        if addr is not None and addr.type == "pci" and addr.bus is not None and addr.bus in pci:
            dev.parent_model = pci[addr.bus].model
        if dev.kind == "controller" and dev.type == "pci":
            continue
        if not dev.virtio:
            continue
        dev.variant = effective_variant(dev, old, ccw_machine)


def effective_variant(dev: Device, old_machine_type: bool = False, ccw_machine: bool = False) -> Optional[str]:
    """docs/libvirt.md §1.4: transitional, modern-only, ccw, legacy-only, invalid-on-ccw or None."""
    on_ccw = (dev.address is not None and dev.address.type == "ccw") or (dev.address is None and ccw_machine)
    if dev.model in ("virtio-transitional", "virtio-non-transitional"):
        if on_ccw:
            return "invalid-on-ccw"  # libvirt writes virtio-*-ccw-(non-)transitional; QEMU refuses it
        return "transitional" if dev.model == "virtio-transitional" else "modern-only"
    if on_ccw:
        return "ccw"
    if always_modern(dev):
        return "modern-only"
    if dev.parent_model in PCIE_PORTS:
        return "modern-only"
    if dev.parent_model in CONVENTIONAL_BUSES:
        return "legacy-only" if old_machine_type else "transitional"
    return None


# --- Lenient reading of partial input (grep output, fragments) -----------------------------

_LINE_RE = re.compile(r"^\s*<([A-Za-z][\w-]*)((?:\s+[\w:-]+\s*=\s*(?:'[^']*'|\"[^\"]*\"))*)\s*/?>")
_ATTR_RE = re.compile(r"([\w:-]+)\s*=\s*(?:'([^']*)'|\"([^\"]*)\")")


class _LineElement:
    """Just enough of the lxml element API for _device_from_element: tag, get, items,
    sourceline and its children by iteration."""

    def __init__(self, tag, attrs, line):
        self.tag, self.attrib, self.sourceline, self.children = tag, attrs, line, []

    def get(self, k, default=None):
        return self.attrib.get(k, default)

    def items(self):
        return list(self.attrib.items())

    def __iter__(self):
        return iter(self.children)


def _parse_lines(text: str, source: str = "the input") -> Optional[Domain]:
    elements: List[_LineElement] = []
    current: Optional[_LineElement] = None
    dom = Domain(partial=True)
    for lineno, line in enumerate(io.StringIO(text, newline=None), 1):
        line = line.rstrip("\n")
        # grep -n / -H prefixes ("12:" or "file.xml:12:") are common in pasted output
        line = re.sub(r"^(?:[^<:]*:)?\d+[:-]", "", line) if not line.lstrip().startswith("<") else line
        m = _LINE_RE.match(line)
        if not m:
            continue
        tag = m.group(1)
        attrs = {k: (a if a else b) for k, a, b in _ATTR_RE.findall(m.group(2))}
        el = _LineElement(tag, attrs, lineno)
        if tag == "type" and "arch" in attrs:
            dom.arch, dom.machine = attrs.get("arch"), attrs.get("machine")
        elif tag in _DEVICE_KINDS:
            if len(elements) >= MAX_FRAGMENT_DEVICES:
                raise InputError("%s has more than %d device lines; a domain has far fewer (is it a "
                                 "`virsh dumpxml` output?)" % (source, MAX_FRAGMENT_DEVICES))
            elements.append(el)
            current = el
        elif tag in ("target", "alias", "address", "driver", "model", "source"):
            if current is None or (tag == "model" and current.tag not in ("interface", "video")):
                if tag == "model" and "type" in attrs:
                    # An orphan <model type=...> line: in a grep for virtio it is an interface's.
                    if len(elements) >= MAX_FRAGMENT_DEVICES:
                        raise InputError("%s has more than %d device lines; a domain has far fewer"
                                         % (source, MAX_FRAGMENT_DEVICES))
                    current = _LineElement("video" if attrs["type"] == "virtio" else "interface", {}, lineno)
                    elements.append(current)
                else:
                    continue
            if len(current.children) < 16:  # a device has a handful of such children
                current.children.append(el)
    if not elements:
        return None
    counters: Dict[str, int] = {}
    for el in elements:
        dev = _device_from_element(el)
        _name_device(dev, counters)
        dom.devices.append(dev)
    resolve(dom)
    return dom
