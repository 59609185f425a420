"""A fake cluster adapter for unit tests of command logic: the adapter's methods over a dict
of objects, every call recorded.  (Integration tests use tests/apiserver instead.)"""
import copy


class FakeCluster:
    """The adapter's read methods over a dict of objects; every call is recorded."""

    namespace = "default"

    def __init__(self, *objs, cr_version=None, cr_error=None):
        self.objs = {}
        for o in objs:
            self.objs[(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])] = o
        self.calls = []
        self.cr_version, self.cr_error = cr_version, cr_error

    def _get(self, kind, ns, name):
        self.calls.append((kind, ns, name))
        return copy.deepcopy(self.objs.get((kind, ns, name)))

    def get_vm(self, ns, name):
        return self._get("VirtualMachine", ns, name)

    def get_vmi(self, ns, name):
        return self._get("VirtualMachineInstance", ns, name)

    def get_controller_revision(self, ns, name):
        return self._get("ControllerRevision", ns, name)

    def get_preference(self, ns, name, cluster_scoped):
        if cluster_scoped:
            return self._get("VirtualMachineClusterPreference", None, name)
        return self._get("VirtualMachinePreference", ns, name)

    def list_launcher_pods(self, ns, uid):
        self.calls.append(("pods", ns, uid))
        return [copy.deepcopy(o) for (k, n, _), o in self.objs.items() if k == "Pod" and n == ns and
                o["metadata"]["labels"].get("kubevirt.io/created-by") == uid]

    def kubevirt_version(self):
        self.calls.append(("KubeVirt", None, None))
        if self.cr_error:
            raise self.cr_error
        return self.cr_version

    def parallel(self, *calls):
        return [c() for c in calls if c is not None]

    def list_vms(self, ns, selector=None):
        self.calls.append(("list VirtualMachine", ns, selector))
        assert selector is None or "=" not in selector or selector.count("=") == 1, "simple selectors only"
        key, _, value = (selector or "").partition("=")
        return [copy.deepcopy(o) for (k, n, _), o in sorted(self.objs.items(), key=lambda kv: str(kv[0]))
                if k == "VirtualMachine" and (ns is None or n == ns) and
                (not selector or (o["metadata"].get("labels") or {}).get(key) == value)]

    def list_vmis(self, ns, selector=None):
        self.calls.append(("list VirtualMachineInstance", ns, selector))
        return [copy.deepcopy(o) for (k, n, _), o in self.objs.items()
                if k == "VirtualMachineInstance" and (ns is None or n == ns)]

    def iter_list(self, kind, ns=None, selector=None, limit=500):
        """The paged LIST of the real adapter, as one page (records the same calls)."""
        if kind == "vms":
            yield self.list_vms(ns, selector)
        elif kind == "vmis":
            yield self.list_vmis(ns, selector)
        else:
            yield []

    def patch_vm(self, ns, name, patch, dry_run=False):
        from kubectl_virtio.cluster import Conflict

        self.calls.append(("patch", ns, name))
        vm = self.objs[("VirtualMachine", ns, name)]
        if patch["metadata"]["resourceVersion"] != vm["metadata"].get("resourceVersion"):
            raise Conflict("the object has been modified")
        new = copy.deepcopy(vm)
        devices = new["spec"]["template"]["spec"].setdefault("domain", {}).setdefault("devices", {})
        value = patch["spec"]["template"]["spec"]["domain"]["devices"]["useVirtioTransitional"]
        if value is None:
            devices.pop("useVirtioTransitional", None)
        else:
            devices["useVirtioTransitional"] = value
        if not dry_run:
            new["metadata"]["resourceVersion"] = str(int(vm["metadata"].get("resourceVersion") or 0) + 1)
            self.objs[("VirtualMachine", ns, name)] = new
        return copy.deepcopy(new)

    def restart_vm(self, ns, name, dry_run=False):
        self.calls.append(("restart", ns, name, dry_run))




class ExecFake(FakeCluster):
    """FakeCluster whose exec answers `virsh dumpxml` with `xml`, or raises `error`."""

    def __init__(self, *objs, xml=None, error=None, **kw):
        super().__init__(*objs, **kw)
        self.xml, self.error = xml, error

    def exec(self, ns, pod, container, argv, timeout=None):
        from kubectl_virtio.cluster import ExecResult

        self.calls.append(("exec", ns, pod, tuple(argv)))
        if self.error is not None:
            raise self.error
        return ExecResult(0, self.xml, "")
