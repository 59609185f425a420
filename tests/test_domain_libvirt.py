"""The domain-XML reader against real libvirt.

Every fixture in tests/data/domains/ is a hand-written domain in the style of KubeVirt's
converter (no PCI addresses unless the scenario needs them). It is defined in a private
embedded-QEMU libvirt (tests/libvirt_oracle.py) and `kubectl_virtio.domain.parse` reads what
`virsh dumpxml` gave back. The expected values are taken from that rendered XML with this
module's own XPath, never from the reader: parent controllers by bus number, "added by libvirt"
by comparing with the input, names from aliases. The effective variant follows the rules
below (docs/libvirt.md §1.2-§1.4, checked there against what guests saw):

- `virtio-transitional` is transitional, `virtio-non-transitional` modern-only (also on i440fx);
- a virtio input (tablet) and vsock are modern-only whatever the model;
- plain `virtio` (`virtio-scsi` for the SCSI controller, or no model) is modern-only on a PCIe
  port and transitional on a conventional bus: pci-root, pcie-root (root complex), PCI bridges.

s390x (libvirt_fixtures.S390X_DOMAIN, rendered with qemu-system-s390x) is checked at the end:
on s390-ccw-virtio every virtio device sits on a ccw address, and its variant is "ccw".
"""
import os
from collections import Counter

import pytest
from lxml import etree

from kubectl_virtio import domain
from libvirt_fixtures import libvirt, libvirt_s390x, render_with_s390x  # noqa: F401  (works with or without conftest)

pytestmark = pytest.mark.libvirt

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DOMAINS = os.path.join(HERE, "data", "domains")
FIXTURES = sorted(f[:-4] for f in os.listdir(DOMAINS) if f.endswith(".xml"))
TESTVM = ["testvm-%s-%s" % (m, v) for m in ("q35", "pc") for v in ("non-transitional", "transitional", "virtio")]

PCIE_PORTS = ("pcie-root-port", "pcie-switch-downstream-port")
CONVENTIONAL = ("pci-root", "pcie-root", "pci-bridge", "pcie-to-pci-bridge")
VIRTIO_MODELS = ("virtio", "virtio-transitional", "virtio-non-transitional")


def _read(name):
    with open(os.path.join(DOMAINS, name + ".xml"), encoding="utf-8") as f:
        return f.read()


def _xml(text):
    return etree.fromstring(text.encode("utf-8"), etree.XMLParser(resolve_entities=False, no_network=True))


@pytest.fixture(scope="module")
def rendered(libvirt):  # noqa: F811
    """{fixture: (input text, dumpxml text)}, all rendered by one virsh process (s390x's alongside)."""
    texts = [_read(n) for n in FIXTURES]
    out = render_with_s390x(libvirt, texts, [n + ".xml" for n in FIXTURES])
    return {n: (t, o) for n, t, o in zip(FIXTURES, texts, out)}


# --- Expectations from the rendered XML (independent of kubectl_virtio.domain) ----------------

def device_elements(root):
    return [el for el in root.find("devices") if isinstance(el.tag, str) and el.tag != "emulator"]


def model_of(el):
    if el.tag in ("interface", "video"):
        found = el.xpath("string(model/@type)")
        return found or None
    return el.get("model")


def parent_model(root, el):
    """Model of the PCI controller whose index is the device's (hex) PCI bus."""
    bus = el.xpath("string(address[@type='pci']/@bus)")
    if not bus:
        return None
    found = root.xpath("devices/controller[@type='pci'][number(@index)=$n]/@model", n=int(bus, 16))
    assert len(found) == 1, "bus %s of <%s> has %d controllers" % (bus, el.tag, len(found))
    return found[0]


def is_virtio(el):
    model = model_of(el) or ""
    if el.tag == "disk":
        return el.xpath("string(target/@bus)") == "virtio"
    if el.tag == "controller":
        return el.get("type") == "virtio-serial" or (el.get("type") == "scsi" and
                                                       model in ("virtio-scsi",) + VIRTIO_MODELS)
    if el.tag in ("interface", "memballoon", "rng", "vsock"):
        return model in VIRTIO_MODELS
    if el.tag == "input":
        return el.get("bus") == "virtio"
    return False


def expected_variant(root, el):
    if not is_virtio(el):
        return None
    model = model_of(el)
    if model == "virtio-transitional" and el.tag not in ("input", "vsock"):
        return "transitional"
    if model == "virtio-non-transitional" or el.tag in ("input", "vsock"):
        return "modern-only"
    parent = parent_model(root, el)
    if parent in PCIE_PORTS:
        return "modern-only"
    if parent in CONVENTIONAL:
        return "transitional"
    raise AssertionError("no rule for <%s> model %r on %r" % (el.tag, model, parent))


def signature(el):
    """What identifies a device between the input and libvirt's output."""
    alias = el.xpath("string(alias/@name)")
    if alias:
        return "alias", alias
    if el.tag == "controller":
        return "controller", el.get("type"), int(el.get("index"))
    if el.tag == "input":
        return "input", el.get("type"), el.get("bus")
    return (el.tag,)


def added_kind(el):
    """The kinds libvirt adds on its own that the reader must flag (None for the others)."""
    if el.tag == "controller" and el.get("type") in ("pci", "sata"):
        return el.get("type") + "-controller"
    if el.tag == "input" and el.get("bus") == "ps2":
        return "ps2-input"
    if el.tag == "audio":
        return "audio"
    return None


def expected_name(root, el):
    """KubeVirt's name for the device, or None where the reader's naming is not pinned here."""
    alias = el.xpath("string(alias/@name)")
    if alias.startswith("ua-"):
        return alias[3:]
    if el.tag == "controller":
        return "%s%s" % (el.get("type"), int(el.get("index")))
    if el.tag in ("memballoon", "rng", "vsock", "video"):
        same = [e for e in device_elements(root) if e.tag == el.tag]
        return "%s%d" % (el.tag, same.index(el))
    return None


def zipped(rendered, name):
    """(input root, rendered root, Domain, [(element, Device)]) for one fixture."""
    text, out = rendered[name]
    src, root = _xml(text), _xml(out)
    dom = domain.parse(out)
    els = device_elements(root)
    assert [d.kind for d in dom.devices] == [el.tag for el in els]
    return src, root, dom, list(zip(els, dom.devices))


# --- Per-device checks, every fixture -------------------------------------------------------

@pytest.mark.parametrize("name", FIXTURES)
def test_domain_identity(rendered, name):
    text, out = rendered[name]
    src, root, dom = _xml(text), _xml(out), domain.parse(out)
    assert dom.name == src.findtext("name") == root.findtext("name")
    assert "_" in dom.name  # <namespace>_<vm>
    assert dom.uuid == src.findtext("uuid")
    assert dom.virt_type == "qemu"
    assert dom.arch == "x86_64"
    assert dom.machine == root.xpath("string(os/type/@machine)")
    family = src.xpath("string(os/type/@machine)")
    assert dom.machine_family == {"q35": "q35", "pc": "i440fx"}[family]
    assert not dom.partial


@pytest.mark.parametrize("name", FIXTURES)
def test_names_bus_target_model(rendered, name):
    src, root, dom, pairs = zipped(rendered, name)
    for el, dev in pairs:
        want = expected_name(root, el)
        if want is not None:
            assert dev.name == want, el.tag
        assert dev.model == model_of(el), dev.key
        if el.tag == "controller":
            assert (dev.type, dev.index) == (el.get("type"), int(el.get("index")))
        if el.tag == "disk":
            assert dev.device == el.get("device")
            assert (dev.bus, dev.target) == (el.xpath("string(target/@bus)"), el.xpath("string(target/@dev)"))
        if el.tag == "input":
            assert (dev.type, dev.bus) == (el.get("type"), el.get("bus"))
        pci = el.find("address[@type='pci']")
        if pci is not None:
            assert (dev.address.type, dev.address.bus, dev.address.slot, dev.address.function) == \
                ("pci", int(pci.get("bus"), 16), int(pci.get("slot"), 16), int(pci.get("function"), 16))
    # Every KubeVirt device (ua- alias in the input) is found under its KubeVirt name.
    keys = Counter(d.key for d in dom.devices)
    assert [k for k, n in keys.items() if n > 1] == []
    wanted = {(el.tag, el.xpath("string(alias/@name)")[3:]) for el in device_elements(src)
              if el.xpath("string(alias/@name)").startswith("ua-")}
    assert wanted and wanted <= set(keys)


@pytest.mark.parametrize("name", FIXTURES)
def test_parent_controller_and_variant(rendered, name):
    src, root, dom, pairs = zipped(rendered, name)
    checked = 0
    for el, dev in pairs:
        assert dev.parent_model == parent_model(root, el), dev.key
        assert dev.virtio == is_virtio(el), dev.key
        if el.tag == "controller" and el.get("type") == "pci":
            continue
        assert dev.variant == expected_variant(root, el), dev.key
        checked += dev.variant is not None
    assert checked >= 2  # each fixture has at least two virtio devices with a variant


@pytest.mark.parametrize("name", FIXTURES)
def test_added_by_libvirt(rendered, name):
    src, root, dom, pairs = zipped(rendered, name)
    written = {signature(el) for el in device_elements(src)}
    seen = Counter()
    for el, dev in pairs:
        from_input = signature(el) in written
        if from_input:
            assert not dev.added_by_libvirt, dev.key  # KubeVirt wrote it
        kind = added_kind(el)
        if kind:
            assert dev.added_by_libvirt == (not from_input), dev.key
            seen[kind] += not from_input
    # libvirt does add these on its own: pci root (+ ports on q35), ps2 mouse and keyboard,
    # and an audio backend next to the VNC display
    assert seen["pci-controller"] >= 1 and seen["ps2-input"] == 2
    if src.find("devices/graphics") is not None:
        assert seen["audio"] == 1
    if dom.machine_family == "q35":
        assert seen["sata-controller"] == 1


def test_libvirt_added_virtio_serial_controller_is_flagged(rendered):
    src, root, dom, pairs = zipped(rendered, "no-serial-console-q35")
    assert not src.xpath("devices/controller[@type='virtio-serial']")
    [(el, dev)] = [(el, dev) for el, dev in pairs if el.tag == "controller" and el.get("type") == "virtio-serial"]
    assert dev.added_by_libvirt


def test_kubevirt_name_that_looks_like_a_hostdev_prefix(libvirt):  # noqa: F811
    # A disk may well be called "gpu-scratch"; KubeVirt's alias is then ua-gpu-scratch.
    text = _read("virtio-lun-q35").replace('"ua-lun0"', '"ua-gpu-scratch"')
    out = libvirt.render(text, label="virtio-lun-q35.xml with disk gpu-scratch")
    assert _xml(out).xpath("devices/disk/alias/@name") == ["ua-gpu-scratch"]  # libvirt keeps it
    [disk] = [d for d in domain.parse(out).devices if d.kind == "disk"]
    assert disk.name == "gpu-scratch"


# --- What libvirt did with each scenario (facts the explanations rely on) -------------------

def virtio_placements(root):
    """[(tag, alias or type, model, parent model, bus)] of the PCI-placed virtio devices."""
    out = []
    for el in device_elements(root):
        if is_virtio(el) and el.find("address[@type='pci']") is not None:
            out.append((el.tag, el.xpath("string(alias/@name)") or el.get("type") or "", model_of(el),
                        parent_model(root, el), int(el.xpath("string(address/@bus)"), 16)))
    return out


def test_bridge_only_for_transitional_on_q35(rendered):
    for variant in ("non-transitional", "transitional", "virtio"):
        root = _xml(rendered["testvm-q35-" + variant][1])
        bridges = root.xpath("devices/controller[@type='pci'][@model='pcie-to-pci-bridge']")
        assert len(bridges) == (1 if variant == "transitional" else 0), variant
        # the bridge sits behind a pcie-root-port
        for b in bridges:
            assert parent_model(root, b) == "pcie-root-port"


@pytest.mark.parametrize("variant", ["non-transitional", "virtio"])
def test_q35_modern_devices_get_a_root_port_each(rendered, variant):
    root = _xml(rendered["testvm-q35-" + variant][1])
    placed = virtio_placements(root)
    assert len(placed) == 6  # 2 disks, NIC, scsi, virtio-serial, balloon
    assert {p[3] for p in placed} == {"pcie-root-port"}
    assert len({p[4] for p in placed}) == len(placed)
    dom = domain.parse(rendered["testvm-q35-" + variant][1])
    assert {d.variant for d in dom.devices if d.virtio} == {"modern-only"}


def test_q35_transitional_devices_share_the_bridge(rendered):
    root = _xml(rendered["testvm-q35-transitional"][1])
    placed = virtio_placements(root)
    assert len(placed) == 6
    assert {p[3] for p in placed} == {"pcie-to-pci-bridge"}
    assert len({p[4] for p in placed}) == 1
    dom = domain.parse(rendered["testvm-q35-transitional"][1])
    assert {d.variant for d in dom.devices if d.virtio} == {"transitional"}


@pytest.mark.parametrize("variant", ["non-transitional", "transitional", "virtio"])
def test_i440fx_everything_on_pci_root(rendered, variant):
    root = _xml(rendered["testvm-pc-" + variant][1])
    assert root.xpath("devices/controller[@type='pci']/@model") == ["pci-root"]
    placed = virtio_placements(root)
    assert len(placed) == 6 and {p[3] for p in placed} == {"pci-root"}
    dom = domain.parse(rendered["testvm-pc-" + variant][1])
    # non-transitional stays modern-only on conventional PCI; plain virtio there is transitional
    want = "modern-only" if variant == "non-transitional" else "transitional"
    assert {d.variant for d in dom.devices if d.virtio} == {want}


def test_tablet_and_vsock_stay_on_root_ports(rendered):
    root = _xml(rendered["rng-tablet-vsock-q35"][1])
    placed = {(p[0], p[1]): p for p in virtio_placements(root)}
    assert placed[("input", "ua-tablet0")][2:4] == ("virtio", "pcie-root-port")
    assert placed[("vsock", "")][2:4] == ("virtio-non-transitional", "pcie-root-port")
    assert placed[("rng", "")][2:4] == ("virtio-transitional", "pcie-to-pci-bridge")
    assert root.xpath("devices/memballoon/@model") == ["none"] and not root.xpath("devices/memballoon/address")
    dom = domain.parse(rendered["rng-tablet-vsock-q35"][1])
    by_key = {d.key: d for d in dom.devices}
    assert by_key[("memballoon", "memballoon0")].virtio is False
    assert by_key[("memballoon", "memballoon0")].variant is None
    for key in (("input", "tablet0"), ("vsock", "vsock0")):
        assert by_key[key].variant == "modern-only"


def test_libvirt_adds_model_less_virtio_serial_for_the_agent(rendered):
    src, root, dom, pairs = zipped(rendered, "no-serial-console-q35")
    assert not src.xpath("devices/controller[@type='virtio-serial']")
    [ctl] = root.xpath("devices/controller[@type='virtio-serial']")
    assert ctl.get("model") is None and ctl.get("index") == "0"
    assert parent_model(root, ctl) == "pcie-root-port"
    assert root.xpath("string(devices/channel/address/@type)") == "virtio-serial"
    dev = {d.key: d for d in dom.devices}[("controller", "virtio-serial0")]
    assert (dev.model, dev.virtio, dev.parent_model) == (None, True, "pcie-root-port")


def test_root_complex_pins_are_kept(rendered):
    src, root, dom, pairs = zipped(rendered, "root-complex-q35")
    pinned = {signature(el): el.xpath("string(address/@slot)") for el in device_elements(src)
              if el.find("address") is not None}
    assert len(pinned) == 5
    for el in device_elements(root):
        if signature(el) in pinned:
            assert el.xpath("string(address/@bus)") == "0x00"
            assert el.xpath("string(address/@slot)") == pinned[signature(el)]
            assert parent_model(root, el) == "pcie-root"
    assert not root.xpath("devices/controller[@model='pcie-root-port']")  # nothing was auto-placed
    assert {d.variant for d in dom.devices if d.virtio} == {"transitional"}


def test_virtio_lun_without_model(rendered):
    src, root, dom, pairs = zipped(rendered, "virtio-lun-q35")
    [lun] = root.xpath("devices/disk[@device='lun']")
    assert lun.get("model") is None and lun.xpath("string(target/@bus)") == "virtio"
    assert parent_model(root, lun) == "pcie-root-port"
    dev = {d.key: d for d in dom.devices}[("disk", "lun0")]
    assert (dev.device, dev.model, dev.virtio, dev.variant) == ("lun", None, True, "modern-only")


def test_windows_sata_e1000_usb_tablet(rendered):
    src, root, dom, pairs = zipped(rendered, "windows-q35")
    for dev_name in ("pvcdisk", "winiso"):
        [el] = root.xpath("devices/disk[alias/@name=$a]", a="ua-" + dev_name)
        assert el.xpath("string(address/@type)") == "drive" and el.get("model") is None
    [nic] = root.xpath("devices/interface")
    # e1000 is a conventional PCI device: libvirt puts it behind a pcie-to-pci-bridge too,
    # so a bridge alone does not mean "transitional virtio".
    assert parent_model(root, nic) == "pcie-to-pci-bridge"
    by_key = {d.key: d for d in dom.devices}
    assert (by_key[("interface", "default")].virtio, by_key[("interface", "default")].variant) == (False, None)
    assert by_key[("disk", "winiso")].device == "cdrom"
    assert by_key[("input", "tablet")].bus == "usb" and by_key[("input", "tablet")].variant is None
    assert by_key[("controller", "usb0")].model == "qemu-xhci"
    assert {d.variant for d in dom.devices if d.virtio} == {"modern-only"}


# --- s390x: libvirt's own ccw placement ---------------------------------------------------------

def test_s390x_ccw_addresses_and_variant(libvirt_s390x):  # noqa: F811
    src, root = _xml(libvirt_s390x.input), _xml(libvirt_s390x.output)
    dom = domain.parse(libvirt_s390x.output)
    assert (dom.arch, dom.machine_family, dom.virt_type) == ("s390x", "s390-ccw-virtio", "qemu")
    assert dom.machine == root.xpath("string(os/type/@machine)") and dom.name == "default_testvm"
    assert root.xpath("string(devices/emulator)").endswith("qemu-system-s390x")
    # libvirt accepts KubeVirt's plain `virtio` (and `virtio-scsi`) and keeps them as written
    assert src.xpath("devices/*/@model | devices/*/model/@type") == \
        ["virtio", "none", "virtio-scsi", "virtio", "virtio", "virtio", "virtio", "virtio"]
    for el in device_elements(src):
        [out] = [o for o in device_elements(root) if signature(o) == signature(el)]
        assert model_of(out) == model_of(el), signature(el)
    assert root.xpath("string(devices/input[@bus='virtio']/@model)") == ""  # keyboard: no model
    # ... and puts every virtio device on the channel subsystem, nothing on PCI
    assert not root.xpath("devices/*/address[@type='pci']")
    ccw = {signature(el): el.xpath("string(address/@devno)")
           for el in device_elements(root) if el.find("address[@type='ccw']") is not None}
    assert len(ccw) == 8 and len(set(ccw.values())) == 8  # 2 disks, NIC, scsi, serial, keyboard, video, balloon
    src_sigs = {signature(el) for el in device_elements(src)}
    assert set(ccw) <= src_sigs  # KubeVirt's devices, none that libvirt added
    checked = 0
    for el, dev in zip(device_elements(root), dom.devices):
        assert dev.kind == el.tag and dev.parent_model is None, dev.key
        if signature(el) in ccw:
            assert dev.virtio and dev.variant == "ccw", dev.key
            assert (dev.address.type, dev.address.devno) == ("ccw", ccw[signature(el)]), dev.key
            checked += 1
        else:
            assert not dev.virtio and dev.variant is None, dev.key
    assert checked == 8
    by_key = {d.key: d for d in dom.devices}
    assert by_key[("controller", "pci0")].added_by_libvirt  # zPCI root, libvirt's own
    assert by_key[("controller", "scsi0")].model == "virtio-scsi"


def test_s390x_transitional_models_are_accepted_but_invalid_on_ccw(libvirt, libvirt_s390x):  # noqa: F811
    # libvirt 9.0 defines them (QEMU refuses virtio-*-ccw-(non-)transitional only at start)
    text = libvirt_s390x.input.replace('model="virtio">', 'model="virtio-non-transitional">', 1) \
        .replace('<memballoon model="virtio"', '<memballoon model="virtio-transitional"')
    out = libvirt.render(text, label="S390X_DOMAIN with (non-)transitional models")
    root, dom = _xml(out), domain.parse(out)
    by_key = {d.key: d for d in dom.devices}
    for key, model in ((("disk", "containerdisk"), "virtio-non-transitional"),
                       (("memballoon", "memballoon0"), "virtio-transitional")):
        assert (by_key[key].model, by_key[key].address.type, by_key[key].variant) == (model, "ccw", "invalid-on-ccw")
    assert root.xpath("string(devices/disk[alias/@name='ua-containerdisk']/address/@type)") == "ccw"
    assert {d.variant for d in dom.devices if d.virtio} == {"ccw", "invalid-on-ccw"}


# --- The shipped example ---------------------------------------------------------------------

def _render_examples():
    import importlib.util

    spec = importlib.util.spec_from_file_location("render_examples", os.path.join(HERE, "data", "render_examples.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _projection(text, written):
    """What the explanation relies on, for the devices our input has: model and parent controller."""
    root = _xml(text)
    return sorted((el.tag, repr(signature(el)), model_of(el) or "", parent_model(root, el) or "")
                  for el in device_elements(root) if signature(el) in written)


@pytest.mark.parametrize("source,target", _render_examples().EXAMPLES)
def test_committed_example_is_what_libvirt_renders(libvirt, source, target):  # noqa: F811
    mod = _render_examples()
    with open(os.path.join(REPO, target), encoding="utf-8") as f:
        committed = f.read()
    recorded, body = mod.split_header(committed)
    assert recorded, "%s lost its header; run tests/data/render_examples.py" % target
    fresh = mod.example_text(libvirt, source)
    now, fresh_body = mod.split_header(fresh)
    if (recorded["libvirt"], recorded["qemu"].split(".")[:2]) == (now["libvirt"], now["qemu"].split(".")[:2]):
        assert committed == fresh, "%s is stale: run python tests/data/render_examples.py" % target
    else:
        # Another libvirt/QEMU: the text may differ (machine version, implicit devices), the
        # models and parent controllers of the devices our input declares may not.
        with open(os.path.join(REPO, source), encoding="utf-8") as f:
            written = {signature(el) for el in device_elements(_xml(f.read()))}
        assert _projection(body, written) == _projection(fresh_body, written)
    assert domain.parse(committed).name == domain.parse(fresh_body).name


def test_example_yaml_matches_the_fixture():
    import yaml

    with open(os.path.join(REPO, "examples", "testvm.yaml"), encoding="utf-8") as f:
        vm = yaml.safe_load(f)
    src = _xml(_read("testvm-q35-non-transitional"))
    spec = vm["spec"]["template"]["spec"]
    assert vm["kind"] == "VirtualMachine" and vm["spec"]["running"] is False
    assert src.findtext("name") == "%s_%s" % (vm["metadata"].get("namespace", "default"), vm["metadata"]["name"])
    disks = [(d["name"], d["disk"]["bus"]) for d in spec["domain"]["devices"]["disks"]]
    assert disks == [(el.xpath("string(alias/@name)")[3:], el.xpath("string(target/@bus)"))
                     for el in src.xpath("devices/disk")]
    assert [i["name"] for i in spec["domain"]["devices"]["interfaces"]] == \
        [a[3:] for a in src.xpath("devices/interface/alias/@name")]
    assert src.xpath("string(devices/interface/@type)") == "ethernet"  # masquerade -> tap
    assert spec["domain"]["resources"]["requests"]["memory"] == "64M"
    assert src.xpath("string(memory)") == "64000000" and src.xpath("string(memory/@unit)") == "b"
    # no useVirtioTransitional: KubeVirt writes virtio-non-transitional on amd64
    assert "useVirtioTransitional" not in spec["domain"]["devices"]
    assert set(src.xpath("devices/*/@model | devices/interface/model/@type")) - {"none", "vga"} == \
        {"virtio-non-transitional"}
