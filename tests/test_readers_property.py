"""Property-based tests and a short seeded fuzz run of the readers (hypothesis).

- The domain-XML reader and the manifest reader never fail on arbitrary, garbled or
  wrong-shaped input with anything but our InputError (whose message stays short), and the
  explanation built from what they accept never crashes either.
- A whole document that lost its tail is always an error, never a partial answer.
- Reading back a domain that real libvirt rendered (tests/libvirt_oracle.py) gives the
  devices that went in, with the variant their slot implies.

The runs are derandomized (a fixed seed: the same examples every run, so CI is
reproducible) and bounded in examples, so the module takes seconds.  For a longer local
fuzz run: KUBECTL_VIRTIO_FUZZ_EXAMPLES=5000 pytest --timeout 0 tests/test_readers_property.py
"""
import json
import os

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from kubectl_virtio import domain, explain, spec
from kubectl_virtio.errors import InputError

EXAMPLES = int(os.environ.get("KUBECTL_VIRTIO_FUZZ_EXAMPLES", "150"))
FUZZ = settings(derandomize=True, max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])

HERE = os.path.dirname(os.path.abspath(__file__))
DOMAINS = os.path.join(HERE, "data", "domains")
SEEDS = {}
for _f in sorted(os.listdir(DOMAINS)):
    if _f.endswith(".xml"):
        with open(os.path.join(DOMAINS, _f), encoding="utf-8") as _fh:
            SEEDS[_f] = _fh.read()
SEED_NAMES = sorted(SEEDS)
MAX_MESSAGE = 600


def short(e: InputError):
    assert len(e.message) < MAX_MESSAGE and len(e.hint) < MAX_MESSAGE, e.message[:200]


def read_xml(text, fragment):
    """domain.parse, and the explanation of what it read: only InputError may come out."""
    try:
        dom = domain.parse(text, "fuzz.xml", fragment=fragment)
    except InputError as e:
        short(e)
        return None
    explain.explain(None, dom)  # the offline --dumpxml path
    return dom


# --- The domain-XML reader ----------------------------------------------------------------

XML_BITS = ["<domain>", "</domain>", "<devices>", "</devices>", "<disk type='file' device='disk' model='virtio'>",
            "</disk>", "<target dev='vda' bus='virtio'/>", "<alias name='ua-x'/>", "<model type='virtio'/>",
            "<address type='pci' domain='0x0' bus='0x01' slot='0x00' function='0x0'/>",
            "<address type='ccw' devno='0x0001'/>", "<controller type='pci' index='1' model='pcie-root-port'/>",
            "<interface type='ethernet'>", "</interface>", "<os><type arch='x86_64' machine='pc-q35-2.6'>hvm</type></os>",
            "<!DOCTYPE d>", "<!ENTITY e 'x'>", "&e;", "&amp;", "<![CDATA[x]]>", "<!-- c -->", "<?pi x?>",
            "<?xml version='1.0' encoding='UTF-16'?>", "\x00", "\ufeff", "\udcff", "12:", "file.xml:3-", "\n", " ",
            "'", '"', "<", ">", "=", "/>", "<input type='tablet' bus='virtio'/>", "<memballoon model='none'/>",
            "<name>ns_vm</name>", "<vsock model='virtio-transitional'/>", "bus='0xffffffffffffffffffff'",
            "index='-1'", "slot='9" + "9" * 5000 + "'"]
xml_soup = st.lists(st.one_of(st.sampled_from(XML_BITS), st.text(max_size=20)), max_size=60).map("".join)


@FUZZ
@given(text=st.one_of(st.text(max_size=2000), st.binary(max_size=2000), xml_soup), fragment=st.booleans())
def test_xml_reader_only_raises_input_error(text, fragment):
    read_xml(text, fragment)


@st.composite
def garbled_seed(draw):
    """A real domain fixture with a slice cut out, replaced, or duplicated."""
    text = SEEDS[draw(st.sampled_from(SEED_NAMES))]
    i = draw(st.integers(0, len(text)))
    j = draw(st.integers(i, min(len(text), i + 400)))
    how = draw(st.sampled_from(["cut", "replace", "dup", "insert-bits"]))
    if how == "cut":
        return text[:i] + text[j:]
    if how == "replace":
        return text[:i] + draw(st.text(max_size=40)) + text[j:]
    if how == "dup":
        return text[:j] + text[i:j] + text[j:]
    return text[:i] + draw(xml_soup) + text[i:]


@FUZZ
@given(text=garbled_seed(), fragment=st.booleans())
def test_garbled_domains_only_raise_input_error(text, fragment):
    read_xml(text, fragment)


@FUZZ
@given(name=st.sampled_from(SEED_NAMES), data=st.data())
def test_a_truncated_whole_document_is_an_error_never_a_partial_answer(name, data):
    text = SEEDS[name]
    cut = data.draw(st.integers(1, len(text.rstrip()) - 1))
    for fragment in (False, True):
        with pytest.raises(InputError) as e:
            domain.parse(text[:cut], name, fragment=fragment)
        assert name in e.value.message
        short(e.value)


@FUZZ
@given(name=st.sampled_from(SEED_NAMES), data=st.data())
def test_grep_lines_of_a_domain_are_a_partial_reading_of_its_devices(name, data):
    """Any subset of a real domain's lines that does not start with <domain> is read as a
    fragment: partial, and every disk it names is a disk of the whole domain."""
    lines = SEEDS[name].splitlines()
    keep = data.draw(st.lists(st.sampled_from(range(len(lines))), unique=True, min_size=1, max_size=40))
    text = "\n".join(lines[i] for i in sorted(keep))
    assume(not domain.is_whole_document(text))
    dom = read_xml(text, True)
    if dom is None:
        return
    assert dom.partial
    whole = {d.key: d for d in domain.parse(SEEDS[name]).devices}
    for d in dom.devices:
        if d.kind == "disk" and d.alias:
            assert d.key in whole and whole[d.key].model == d.model


# --- The manifest reader ------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=10), children, max_size=4)),
    max_leaves=30)

# Field names the reader and the prediction look at, so generated objects hit them.
SPEC_KEYS = ["kind", "metadata", "name", "namespace", "labels", "annotations", "spec", "template", "domain",
             "devices", "disks", "disk", "lun", "cdrom", "bus", "interfaces", "model", "binding", "inputs",
             "volumes", "networks", "useVirtioTransitional", "autoattachMemBalloon", "preference", "rng", "video",
             "type", "tpm", "sound", "watchdog", "filesystems", "virtiofs", "gpus", "hostDevices", "firmware",
             "bootloader", "efi", "machine", "architecture", "items", "data", "virtualMachineTemplate"]
keyed_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
              st.sampled_from(["virtio", "sata", "scsi", "usb", "e1000", "absent", "passt", "amd64", "arm64",
                               "s390x", "q35", "pc-i440fx-2.6", "testvm", "VirtualMachine"])),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.sampled_from(SPEC_KEYS), children, max_size=5)),
    max_leaves=40)


@st.composite
def vm_like(draw):
    """A VM-shaped object with arbitrary values in the places the reader looks."""
    kind = draw(st.sampled_from(["VirtualMachine", "VirtualMachineInstance", "VirtualMachinePool",
                                 "VirtualMachineInstanceReplicaSet", "List", "VirtualMachineClusterPreference"]))
    devices = draw(st.dictionaries(st.sampled_from(SPEC_KEYS), keyed_values, max_size=6))
    tspec = draw(st.dictionaries(st.sampled_from(SPEC_KEYS), keyed_values, max_size=3))
    if draw(st.booleans()):
        tspec["domain"] = {"devices": devices}
    name = draw(st.one_of(st.just("testvm"), keyed_values))
    spec_part = draw(st.one_of(st.just({"template": {"spec": tspec}}), keyed_values))
    obj = {"apiVersion": "kubevirt.io/v1", "kind": kind, "metadata": {"name": name}, "spec": spec_part}
    if kind == "List":
        obj = {"kind": "List", "items": [dict(obj, kind="VirtualMachine")]}
    return obj


def read_manifest(text):
    try:
        vm = spec.select(spec.load_documents(text, "fuzz.yaml"), "fuzz.yaml")
    except InputError as e:
        short(e)
        return None
    for arch in ("amd64", "arm64", "s390x"):
        explain.explain(vm, None, arch=arch)
    return vm


@FUZZ
@given(obj=st.one_of(vm_like(), keyed_values, json_values), as_json=st.booleans())
def test_manifest_reader_only_raises_input_error(obj, as_json):
    read_manifest(json.dumps(obj) if as_json else yaml.safe_dump(obj))


def shaped_or_error(check, value, shape):
    try:
        return "ok", check(value, shape)
    except InputError as e:
        return "error", e.message, e.hint


SHAPE_KEYS = sorted({k for shape in (spec.VMI_SPEC_SHAPE, spec.DEVICES_SHAPE, spec.METADATA_SHAPE,
                                     spec.PREFERENCE_SHAPE["devices"]) for k in shape}
                    | {"name", "bus", "disk", "type", "model", "other", "more"})
shape_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=4), st.sampled_from(["virtio", "q35"])),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(SHAPE_KEYS), children, max_size=8)),
    max_leaves=60)


def fitting(shape):
    """Values that mostly fit `shape` (so a wrong one is often the only one), with nulls, extra
    fields and, now and then, a value of another type."""
    other = st.one_of(st.none(), shape_values)
    if type(shape) is dict:
        fields = {k: st.one_of(fitting(sub), other) for k, sub in shape.items()}
        return st.one_of(st.fixed_dictionaries({}, optional=dict(fields, other=other, more=other)), other)
    if type(shape) is list:
        return st.one_of(st.lists(st.one_of(fitting(shape[0]), st.none()), max_size=3), other)
    leaf = {str: st.text(max_size=4), bool: st.booleans(), dict: st.dictionaries(st.text(max_size=2), other,
                                                                                 max_size=2), int: st.integers()}
    return st.one_of(leaf[shape], leaf[shape], leaf[shape], other)


TEST_SHAPES = [spec.VMI_SPEC_SHAPE, spec.METADATA_SHAPE, spec.PREFERENCE_SHAPE,
               {"disks": [{"disk": {"bus": int}, "name": str}], "list": [[str]], "n": int, "d": [dict]}]


@pytest.mark.parametrize("shape", TEST_SHAPES, ids=["vmi-spec", "metadata", "preference", "other-leaves"])
@FUZZ
@given(data=st.data())
def test_the_fast_shape_check_answers_as_the_path_tracking_walk(data, shape):
    """spec.shaped (a path-free first pass, the walk only on a wrong type) against the walk
    alone: the same copy with the same nulls dropped, or the same error naming the same field."""
    value = data.draw(st.one_of(fitting(shape), shape_values))
    fast = shaped_or_error(lambda v, s: spec.shaped(v, s, "spec", "fuzz"), value, shape)
    walk = shaped_or_error(lambda v, s: spec._shaped(v, s, ["spec"], "fuzz"), value, shape)
    assert fast == walk
    assert json.dumps(fast, sort_keys=True) == json.dumps(walk, sort_keys=True)  # True is not 1 here


YAML_BITS = ["kind: VirtualMachine\n", "metadata:\n", "  name: testvm\n", "spec:\n", "  template:\n", "    spec:\n",
             "      domain:\n", "        devices:\n", "          disks:\n", "          - name: a\n", "            disk: {}\n",
             "&a ", "*a ", "[*a, *a]", "!!python/object:os.system ", "!!binary AAAA", "---\n", "...\n", "? ", ": ",
             "- ", "{", "}", "[", "]", "'", '"', "\t", "%YAML 1.1\n", "%TAG ! tag:x:\n", "<<: *a\n", "null", "~",
             "0x1F", "1e400", ".nan", "2001-01-01", "\x00", "\ufeff", "\n", "  "]
yaml_soup = st.lists(st.one_of(st.sampled_from(YAML_BITS), st.text(max_size=10)), max_size=50).map("".join)


@FUZZ
@given(text=st.one_of(yaml_soup, st.text(max_size=1000)))
def test_manifest_text_soup_only_raises_input_error(text):
    read_manifest(text)


# --- libvirt renders, the reader reads back --------------------------------------------------

MODELS = ("virtio", "virtio-transitional", "virtio-non-transitional")
DISK_NAMES = ("rootdisk", "cloudinit", "data-1", "data_2", "lun0", "scratch")  # libvirt: ua-[A-Za-z0-9_-]+


@st.composite
def kubevirt_like_domain(draw, index):
    """A domain in the style of KubeVirt's converter (no addresses): random machine, disks,
    NICs, balloon, rng, with random virtio models."""
    machine = draw(st.sampled_from(["q35", "pc"]))
    disks = draw(st.lists(st.tuples(st.sampled_from(DISK_NAMES), st.sampled_from(MODELS + (None,)),
                                    st.sampled_from(["virtio", "virtio", "sata"])),
                          min_size=1, max_size=4, unique_by=lambda t: t[0]))
    nics = draw(st.lists(st.sampled_from(MODELS + ("e1000",)), max_size=2))
    balloon = draw(st.sampled_from(MODELS + ("none",)))
    rng = draw(st.one_of(st.none(), st.sampled_from(MODELS)))
    serial = draw(st.sampled_from(MODELS))
    devs = []
    letters = {"virtio": iter("abcdefgh"), "sata": iter("abcdefgh")}
    for name, model, bus in disks:
        m = " model='%s'" % model if model and bus == "virtio" else ""
        dev = ("vd" if bus == "virtio" else "sd") + next(letters[bus])
        devs.append("<disk type='file' device='disk'%s><source file='/var/run/kubevirt/%s.img'/>"
                    "<target dev='%s' bus='%s'/><driver name='qemu' type='raw'/><alias name='ua-%s'/></disk>"
                    % (m, name, dev, bus, name))
    for i, model in enumerate(nics):
        devs.append("<interface type='ethernet'><mac address='02:5a:11:00:%02x:%02x'/><target dev='tap%d' "
                    "managed='no'/><model type='%s'/><alias name='ua-nic%d'/><rom enabled='no'/></interface>"
                    % (index % 256, i, i, model, i))
    devs.append("<controller type='virtio-serial' index='0' model='%s'/>" % serial)
    devs.append("<channel type='unix'><target name='org.qemu.guest_agent.0' type='virtio'/></channel>")
    if rng:
        devs.append("<rng model='%s'><backend model='random'>/dev/urandom</backend></rng>" % rng)
    devs.append("<memballoon model='%s'/>" % balloon)
    xml = ("<domain type='qemu'><name>prop_vm%d</name><memory unit='b'>64000000</memory>"
           "<os><type arch='x86_64' machine='%s'>hvm</type></os><vcpu>1</vcpu><devices>%s</devices></domain>"
           % (index, machine, "".join(devs)))
    return xml


@st.composite
def domain_batch(draw):
    return [draw(kubevirt_like_domain(i)) for i in range(draw(st.integers(4, 8)))]


@pytest.mark.libvirt
@settings(derandomize=True, max_examples=max(3, EXAMPLES // 50), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(batch=domain_batch())
def test_reading_a_libvirt_rendered_domain_gives_the_devices_that_went_in(libvirt, batch):  # noqa: F811
    from lxml import etree

    from test_domain_libvirt import device_elements, expected_variant, model_of

    outputs = libvirt.render_many(batch, ["generated domain #%d" % i for i in range(len(batch))])
    for src, out in zip(batch, outputs):
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        given_root, root = etree.fromstring(src.encode(), parser), etree.fromstring(out.encode(), parser)
        dom = domain.parse(out, "rendered")
        assert not dom.partial and dom.name == given_root.findtext("name")
        by_key = {d.key: d for d in dom.devices}
        # every device with a KubeVirt name comes back with its model, bus and target
        for el in device_elements(given_root):
            alias = el.xpath("string(alias/@name)")
            if not alias.startswith("ua-"):
                continue
            d = by_key[(el.tag, alias[3:])]
            assert d.model == model_of(el)
            if el.tag == "disk":
                assert (d.bus, d.target) == (el.xpath("string(target/@bus)"), el.xpath("string(target/@dev)"))
        # and the reader agrees with the rendered XML, device by device
        rendered_els = device_elements(root)
        assert [d.kind for d in dom.devices] == [el.tag for el in rendered_els]
        for el, d in zip(rendered_els, dom.devices):
            want = expected_variant(root, el)
            if want is not None:
                assert d.variant == want, (el.tag, d.name, d.model, d.parent_model)
        # the explanation of what was read back never calls a device that is there missing
        exp = explain.explain(None, dom)
        assert all(x.in_domain for x in exp.devices)
