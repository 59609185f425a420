"""`kubectl virtio list`: fleet rows from a live cluster (paged LISTs joined page by page) or
from a must-gather directory, with risks, `--live` execs and `--check`.

Validate (flags, before any I/O) -> inputs (cluster stream or directory) -> rows -> printer.
The cluster adapter is imported only for a cluster run; `--from DIR` never loads it.
See docs/fleet.md for the streaming design, the risks and the exit codes.
"""
from __future__ import annotations

import queue
import sys
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from kubectl_virtio import fleet as F
from kubectl_virtio.errors import UsageError, VirtioError

DEFAULT_PARALLEL = 8
MAX_PARALLEL = 64
PAGE = 500  # items a LIST page, as kubectl's --chunk-size default
LAUNCHER_SELECTOR = "kubevirt.io=virt-launcher"


@dataclass
class Options:
    namespace: Optional[str] = None
    all_namespaces: bool = False
    selector: Optional[str] = None
    live: bool = False
    parallel: int = DEFAULT_PARALLEL
    check: bool = False
    fail_rank: int = F.RISKS["no-virtio1-driver"][1]
    risks: List[str] = field(default_factory=list)
    ignore: List[str] = field(default_factory=list)
    sort: Optional[str] = None
    output: str = "table"
    no_headers: bool = False
    from_dir: Optional[str] = None
    guest_os: Optional[str] = None


def validate(args) -> Options:
    """Every flag checked before anything is read (exit 2 on a bad one)."""
    o = Options(namespace=getattr(args, "namespace", None), all_namespaces=bool(args.all_namespaces),
                selector=args.selector, live=bool(args.live), parallel=args.parallel, check=bool(args.check),
                output=args.output, no_headers=bool(args.no_headers), from_dir=args.from_dir,
                sort=args.sort, guest_os=getattr(args, "guest_os", None))
    try:
        o.fail_rank = F.parse_fail_on(args.fail_on)
    except ValueError as e:
        raise UsageError("--fail-on: %s" % e) from None
    for r in args.risk or []:
        for rid in (x.strip() for x in r.split(",") if x.strip()):
            if rid not in F.RISKS:
                raise UsageError("--risk %s: unknown risk (one of: %s)" % (rid, ", ".join(F.RISKS)))
            o.risks.append(rid)
    from kubectl_virtio import spec as S

    for ref in args.ignore or []:
        ns, _, name = ref.partition("/")
        if not name or not S.valid_name(ns) or not S.valid_name(name):
            raise UsageError("--ignore %r: expected NAMESPACE/NAME" % ref)
        o.ignore.append("%s/%s" % (ns, name))
    if not 1 <= o.parallel <= MAX_PARALLEL:
        raise UsageError("--parallel must be between 1 and %d" % MAX_PARALLEL)
    if o.from_dir is not None:
        if o.live:
            raise UsageError("--live reads a cluster; --from reads a directory: choose one")
        if o.selector:
            raise UsageError("-l/--selector selects on the API server; it does not apply to --from")
    if o.all_namespaces and o.namespace and o.from_dir is None:
        raise UsageError("-A and -n are exclusive")
    if o.selector is not None and len(o.selector) > 4096:
        raise UsageError("the label selector is too long")
    return o


# --- the cluster stream -------------------------------------------------------------------

def _key(obj) -> str:
    m = obj.get("metadata") or {}
    return "%s/%s" % (m.get("namespace") or "", m.get("name") or "")


def _owned_by_vm(vmi) -> bool:
    return any(isinstance(r, dict) and r.get("kind") == "VirtualMachine" and r.get("controller")
               for r in (vmi.get("metadata") or {}).get("ownerReferences") or [])


def _items(pages) -> Iterator[Dict[str, Any]]:
    for page in pages:
        yield from page


def _prefetch(iterable, depth: int = 2):
    """Iterate in a background thread, `depth` pages ahead: the VM and VMI LISTs overlap."""
    q: "queue.Queue[Tuple[str, Any]]" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def pump():
        try:
            for x in iterable:
                while not stop.is_set():
                    try:
                        q.put(("item", x), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            q.put(("error", e))

    threading.Thread(target=pump, name="list-prefetch", daemon=True).start()
    try:
        while True:
            tag, x = q.get()
            if tag == "end":
                return
            if tag == "error":
                raise x
            yield x
    finally:
        stop.set()


def join(vms: Iterator[Dict[str, Any]], vmis: Iterator[Dict[str, Any]]):
    """(vm, vmi or None) for every VM, and (None, vmi) for standalone VMIs, from two streams in
    the API server's order (etcd key order, namespace/name: the same for both lists).  Only the
    VMIs read ahead of the current VM are held."""
    pending: Dict[str, Dict[str, Any]] = {}
    vmis = iter(vmis)
    last: Optional[str] = None
    done = False
    for vm in vms:
        k = _key(vm)
        while not done and (last is None or last < k):
            try:
                vmi = next(vmis)
            except StopIteration:
                done = True
                break
            if not _owned_by_vm(vmi):
                yield None, vmi
                continue
            last = _key(vmi)
            pending[last] = vmi
        for stale in [p for p in pending if p < k]:
            del pending[stale]  # its VM is not in the list (deleted meanwhile, or not selected)
        yield vm, pending.pop(k, None)
    for vmi in vmis:
        if not _owned_by_vm(vmi):
            yield None, vmi


class PreferenceCache:
    """One read per distinct preference (by kind, namespace and name), never one per VM.
    The fleet reads the (Cluster)Preference object; a VM's frozen ControllerRevision is per VM
    and is read only by `explain` (docs/fleet.md)."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.cache: Dict[Tuple[bool, str, str], Tuple[Optional[Dict[str, Any]], Optional[str]]] = {}
        self.reads = 0

    def get(self, vm: Dict[str, Any]) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
        ref = ((vm.get("spec") or {}).get("preference"))
        if not isinstance(ref, dict) or not ref:
            return None, None
        name = ref.get("name") or ((vm.get("status") or {}).get("preferenceRef") or {}).get("name")
        kind = str(ref.get("kind") or "").lower()
        if not name:
            return None, "the preference is inferred from a volume and not resolved yet"
        if kind not in ("", "virtualmachineclusterpreference", "virtualmachineclusterpreferences",
                        "virtualmachinepreference", "virtualmachinepreferences"):
            return None, "spec.preference.kind %r is not a preference kind" % ref.get("kind")
        cluster_scoped = kind not in ("virtualmachinepreference", "virtualmachinepreferences")
        ns = "" if cluster_scoped else ((vm.get("metadata") or {}).get("namespace") or "")
        key = (cluster_scoped, ns, name)
        if key not in self.cache:
            from kubectl_virtio.cluster import Forbidden

            self.reads += 1
            try:
                obj = self.cluster.get_preference(ns, name, cluster_scoped)
                self.cache[key] = (obj, None if obj is not None else "preference %s not found" % name)
            except Forbidden as e:
                self.cache[key] = (None, "cannot read preference %s: %s" % (name, e.message))
        return self.cache[key]


def _compact_pod(pod: Dict[str, Any]) -> Dict[str, Any]:
    m = pod.get("metadata") or {}
    return {"metadata": {"name": m.get("name"), "creationTimestamp": m.get("creationTimestamp"),
                         "labels": {"kubevirt.io": (m.get("labels") or {}).get("kubevirt.io")}},
            "spec": {"nodeName": (pod.get("spec") or {}).get("nodeName"),
                     "containers": [{"name": c.get("name"), "image": c.get("image")}
                                    for c in (pod.get("spec") or {}).get("containers") or []
                                    if isinstance(c, dict) and c.get("name") == "compute"]},
            "status": {"phase": (pod.get("status") or {}).get("phase")}}


def cluster_inputs(cluster, o: Options) -> Iterator[Tuple[F.FleetInput, Optional[Callable[[], None]]]]:
    """(input, live job or None) for every VM and standalone VMI in scope, in list order."""
    from kubectl_virtio import domain as D
    from kubectl_virtio import live as L

    ns = None if o.all_namespaces else cluster.namespace
    pods_by_vmi: Dict[str, List[Dict[str, Any]]] = {}
    pod_stream = None
    if o.live:
        # Launcher pods carry the VMI's uid (kubevirt.io/created-by); kept compact for the join.
        pod_stream = _prefetch(cluster.iter_list("pods", ns, LAUNCHER_SELECTOR, PAGE))
    # Both lists are fetched a page ahead in background threads: the next page's request and
    # JSON parsing overlap the rows of the current one.
    vm_pages = _prefetch(cluster.iter_list("vms", ns, o.selector, PAGE), depth=1)
    vmi_pages = _prefetch(cluster.iter_list("vmis", ns, o.selector, PAGE), depth=1)
    if pod_stream is not None:
        for page in pod_stream:
            for p in page:
                uid = ((p.get("metadata") or {}).get("labels") or {}).get("kubevirt.io/created-by")
                if uid:
                    pods_by_vmi.setdefault(uid, []).append(_compact_pod(p))
    prefs = PreferenceCache(cluster)
    for vm, vmi in join(_items(vm_pages), _items(vmi_pages)):
        pref, pref_err = prefs.get(vm) if vm is not None else (None, None)
        try:
            inp = F.input_from_objects(vm, vmi, preference=pref, preference_error=pref_err, guest_os=o.guest_os,
                                       vmi_expected=not o.selector)
        except VirtioError as e:
            m = ((vm or vmi).get("metadata") or {})
            inp = F.FleetInput(str(m.get("namespace") or ""), str(m.get("name") or "?"), error=e.message)
        job = None
        running = vmi is not None and (vmi.get("status") or {}).get("phase") == L.RUNNING
        if o.live and running:
            pods = pods_by_vmi.pop((vmi.get("metadata") or {}).get("uid") or "", [])
            job = _live_job(cluster, inp, vm, vmi, pods, L, D)
        elif o.live and inp.running:
            inp.error = inp.error or "VMI is %s: no domain to read" % ((vmi or {}).get("status") or {}).get("phase")
        yield inp, job


def _live_job(cluster, inp, vm, vmi, pods, L, D):
    def job():
        pod, _ = L.choose_pod(pods, vmi)
        if pod is None:
            inp.error = "no virt-launcher pod found for the VMI"
            return
        if (pod.get("status") or {}).get("phase") != L.RUNNING:
            inp.error = "virt-launcher pod %s is %s" % (pod["metadata"]["name"], pod["status"].get("phase"))
            return
        if not inp.kubevirt_version:
            for c in pod["spec"].get("containers") or []:
                inp.kubevirt_version = F.image_tag(c.get("image"))
        try:
            xml = L.virsh_dumpxml(cluster, inp.namespace, pod["metadata"]["name"], vmi)
            F.apply_domain(inp, D.parse(xml, "the domain XML of %s/%s" % (inp.namespace, inp.name)), vm, vmi)
        except VirtioError as e:
            inp.error = e.message
    return job


# --- bounded parallel execs, in order -----------------------------------------------------

class _Pool:
    """N daemon workers: an interrupted run exits at once instead of waiting for stuck execs."""

    def __init__(self, n: int):
        self.q: "queue.Queue[Optional[Tuple[Future, Callable[[], None]]]]" = queue.Queue()
        for i in range(n):
            threading.Thread(target=self._work, name="live-%d" % i, daemon=True).start()

    def _work(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            fut, fn = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fn()
                fut.set_result(None)
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                fut.set_exception(e)

    def submit(self, fn) -> Future:
        fut: Future = Future()
        self.q.put((fut, fn))
        return fut


def rows(inputs, o: Options, progress=None) -> Iterator[F.Row]:
    """Evaluate inputs in order; live jobs run `o.parallel` at a time, at most a bounded
    window of rows waits for them."""
    pool = _Pool(o.parallel) if o.live else None
    window: "deque[Tuple[F.FleetInput, Optional[Future]]]" = deque()
    limit = o.parallel * 4

    def finish(inp: F.FleetInput, fut: Optional[Future]) -> F.Row:
        if fut is not None:
            try:
                fut.result()
            except Exception as e:  # noqa: BLE001 - a bug or transport error stays in its row
                inp.error = inp.error or "%s" % (getattr(e, "message", None) or e)
            if progress is not None:
                progress.update(1)
        return F.evaluate(inp, o.ignore)

    try:
        for inp, job in inputs:
            fut = pool.submit(job) if (pool is not None and job is not None) else None
            if fut is not None and progress is not None:
                progress.total = (progress.total or 0) + 1
                progress.refresh()
            window.append((inp, fut))
            while window and (window[0][1] is None or window[0][1].done() or len(window) > limit):
                yield finish(*window.popleft())
        while window:
            yield finish(*window.popleft())
    finally:
        for _, fut in window:
            if fut is not None:
                fut.cancel()


# --- the command --------------------------------------------------------------------------

def run(args) -> int:
    from kubectl_virtio import render

    o = validate(args)
    # Parsed pages are trees of dicts without cycles, freed by reference counting as soon as a
    # page is done; the cyclic collector would only rescan them (tens of thousands of objects
    # a page) every few hundred allocations.  Rarely is enough here.
    import gc

    gc.set_threshold(50_000, 20, 100)
    if o.from_dir is not None:
        from kubectl_virtio import mustgather

        inputs = mustgather.inputs(o.from_dir, namespace=o.namespace if not o.all_namespaces else None,
                                   guest_os=o.guest_os)
        where = "in %s" % o.from_dir
        cluster = None
    else:
        from kubectl_virtio import live as L

        cluster = L.connect(args)
        inputs = cluster_inputs(cluster, o)
        where = "" if o.all_namespaces else "in %s namespace" % cluster.namespace
    progress = None
    if o.live and sys.stderr.isatty():
        # tqdm: a maintained progress bar that redraws in place and leaves stdout alone.
        from tqdm import tqdm

        progress = tqdm(total=0, unit="VM", desc="virsh dumpxml", file=sys.stderr, leave=False)
    printer = render.FleetPrinter(o.output, o.no_headers)
    summary = F.Summary(o.fail_rank)
    interrupted = False
    buffered: List[F.Row] = []
    try:
        for row in rows(inputs, o, progress):
            if not F.wanted(row, o.risks):
                continue
            summary.add(row)
            if o.sort:
                buffered.append(row)
            else:
                printer.add(row)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if progress is not None:
            progress.close()
    if o.sort:
        buffered.sort(key=F.sort_key(o.sort))
        for row in buffered:
            printer.add(row)
    report = summary.to_dict()
    if interrupted:
        report["interrupted"] = True
    printer.close(report)
    if printer.count == 0 and o.output in ("table", "wide", "markdown"):
        print("No VirtualMachines found%s." % (" " + where if where else ""), file=sys.stderr)
    if interrupted:
        print("interrupted: %d VMs listed before Ctrl-C" % summary.vms, file=sys.stderr)
        return 130
    if o.check:
        print("%d VMs, %d at risk, %d at or above --fail-on %s%s" % (
            summary.vms, summary.at_risk, summary.failed, args.fail_on,
            ", %d with errors" % summary.errors if summary.errors else ""), file=sys.stderr)
        if summary.failed:
            return F.EXIT_AT_RISK
        if summary.errors:
            return 1
    return 0
