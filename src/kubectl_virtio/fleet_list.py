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
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from kubectl_virtio import fleet as F
from kubectl_virtio.cmdline import LIST_PARALLEL, ClusterFlags, Streams, preload
from kubectl_virtio.errors import UsageError, VirtioError
from kubectl_virtio.record import Record

DEFAULT_PARALLEL = LIST_PARALLEL
MAX_PARALLEL = 64
PAGE = 500  # items a LIST page, as kubectl's --chunk-size default
LAUNCHER_SELECTOR = "kubevirt.io=virt-launcher"


class ListOptions(Record):
    """`list`: Complete (flags) -> Validate (no I/O) -> Run (cluster and streams injected)."""

    __slots__ = _fields = ("all_namespaces", "selector", "live", "parallel", "check", "fail_on", "fail_rank", "risk",
                           "risks", "ignore", "sort", "output", "no_headers", "from_dir", "guest_os",
                           "kubevirt_version", "version", "flags")

    def __init__(self, all_namespaces: bool = False, selector: Optional[str] = None, live: bool = False,
                 parallel: int = DEFAULT_PARALLEL, check: bool = False, fail_on: str = "no-virtio1-driver",
                 fail_rank: int = F.RISKS["no-virtio1-driver"][1], risk: Optional[List[str]] = None,
                 risks: Optional[List[str]] = None, ignore: Optional[List[str]] = None, sort: Optional[str] = None,
                 output: str = "table", no_headers: bool = False, from_dir: Optional[str] = None,
                 guest_os: Optional[str] = None, kubevirt_version: Optional[str] = None, version: Any = None,
                 flags: Optional[ClusterFlags] = None):
        self.all_namespaces, self.selector, self.live, self.parallel = all_namespaces, selector, live, parallel
        self.check, self.fail_on, self.fail_rank = check, fail_on, fail_rank
        self.risk = risk if risk is not None else []
        self.risks = risks if risks is not None else []
        self.ignore = ignore if ignore is not None else []
        self.sort, self.output, self.no_headers, self.from_dir = sort, output, no_headers, from_dir
        self.guest_os, self.kubevirt_version, self.version = guest_os, kubevirt_version, version
        self.flags = flags if flags is not None else ClusterFlags()

    @classmethod
    def complete(cls, args) -> "ListOptions":
        return cls(all_namespaces=bool(args.all_namespaces), selector=args.selector, live=bool(args.live),
                   parallel=args.parallel, check=bool(args.check), fail_on=args.fail_on, risk=list(args.risk or []),
                   ignore=list(args.ignore or []), sort=args.sort, output=args.output,
                   no_headers=bool(args.no_headers), from_dir=args.from_dir, guest_os=args.guest_os,
                   kubevirt_version=getattr(args, "kubevirt_version", None), flags=ClusterFlags.from_args(args))

    @property
    def needs_cluster(self) -> bool:
        return self.from_dir is None

    @property
    def namespace(self) -> Optional[str]:
        """The namespace --from keeps (-A wins over -n, as in kubectl)."""
        return None if self.all_namespaces else self.flags.namespace

    def validate(self) -> None:
        """Every flag checked before anything is read (exit 2 on a bad one)."""
        from kubectl_virtio import validate

        self.version = validate.release(self.kubevirt_version)
        try:
            self.fail_rank = F.parse_fail_on(self.fail_on)
        except ValueError as e:
            raise UsageError("--fail-on: %s" % e) from None
        self.risks = []
        for r in self.risk:
            for rid in (x.strip() for x in r.split(",") if x.strip()):
                if rid not in F.RISKS:
                    raise UsageError("--risk %s: unknown risk (one of: %s)" % (validate.clip(rid), ", ".join(F.RISKS)))
                self.risks.append(rid)
        ignore = []
        for ref in self.ignore:
            ns, _, name = ref.partition("/")
            if not name or not validate.is_dns1123_label(ns) or not validate.is_dns1123_subdomain(name):
                raise UsageError("--ignore %s: expected NAMESPACE/NAME" % validate.clip(ref))
            ignore.append("%s/%s" % (ns, name))
        self.ignore = ignore
        if not 1 <= self.parallel <= MAX_PARALLEL:
            raise UsageError("--parallel must be between 1 and %d" % MAX_PARALLEL)
        if self.guest_os is not None and (len(self.guest_os) > 64 or not self.guest_os.strip()):
            raise UsageError("--guest-os %s is not an OS id such as centos6.10 or win10" % validate.clip(self.guest_os))
        if self.from_dir is not None:
            if self.live:
                raise UsageError("--live reads a cluster; --from reads a directory: choose one")
            if self.selector:
                raise UsageError("-l/--selector selects on the API server; it does not apply to --from")
        validate.namespace(self.flags.namespace)
        validate.selector(self.selector)

    def run(self, cluster, streams: Streams) -> int:
        return run(self, cluster, streams)


# --- the cluster stream -------------------------------------------------------------------

def _key(obj) -> str:
    m = obj.get("metadata") or {}
    return "%s/%s" % (m.get("namespace") or "", m.get("name") or "")


def _owned_by_vm(vmi) -> bool:
    return any(isinstance(r, dict) and r.get("kind") == "VirtualMachine" and r.get("controller")
               for r in (vmi.get("metadata") or {}).get("ownerReferences") or [])


def items(pages) -> Iterator[Dict[str, Any]]:
    for page in pages:
        yield from page


class prefetch:
    """Iterate in a background thread, `depth` pages ahead, from the moment it is made: the
    launcher pod, VM and VMI LISTs run at once (a generator function would start its thread
    only when first asked, after the pods were all read), and each next page's request and
    JSON parsing overlap the rows of the current one.  A page is asked for only when there
    is room for it, so at most `depth` pages wait besides the one being read: memory does not
    grow with the fleet."""

    def __init__(self, iterable, depth: int = 2):
        self._q: "queue.Queue[Tuple[str, Any]]" = queue.Queue()
        self._room = threading.Semaphore(depth)
        self._stop = threading.Event()
        q, room, stop = self._q, self._room, self._stop  # the thread holds these, not self

        def pump():
            try:
                it = iter(iterable)
                while True:
                    while not room.acquire(timeout=0.2):
                        if stop.is_set():
                            return
                    if stop.is_set():
                        return
                    try:
                        x = next(it)
                    except StopIteration:
                        q.put(("end", None))
                        return
                    q.put(("item", x))
            except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
                q.put(("error", e))

        threading.Thread(target=pump, name="list-prefetch", daemon=True).start()
        self._done = False

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        tag, x = self._q.get()
        if tag == "item":
            self._room.release()
            return x
        self._done = True
        self._stop.set()
        if tag == "error":
            raise x
        raise StopIteration

    def close(self) -> None:
        self._done = True
        self._stop.set()

    __del__ = close


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


class Resolver:
    """VM contexts (context.build) for joined LIST rows: one read per distinct preference
    object and at most one read of the KubeVirt CR, however many pages (context.resolve_many
    does the same for lists held whole)."""

    def __init__(self, cluster, override=None, warn: Optional[Callable[[str], None]] = None):
        self.cluster = cluster
        self.override = override  # --kubevirt-version
        self.prefs: Dict[Any, Any] = {}
        self.cr: Optional[Tuple[Optional[str], Optional[str]]] = None
        self.releases: Dict[Any, Any] = {}
        self.warn = warn
        self.warned: set = set()

    def _say(self, rel) -> None:
        """A release's warnings (older or newer than the rules know, a digest), once a run."""
        for n in rel.notes:
            if self.warn is not None and n.severity == "warning" and n.message not in self.warned \
                    and len(self.warned) < 64:
                self.warned.add(n.message)
                self.warn(n.message)

    def context(self, vm, vmi, pods=()):
        from kubectl_virtio import context as C

        pref = None
        if vm is not None:
            src = C.preference_source(vm)
            if src is not None and src.fetchable:
                ns = C.meta(vm).get("namespace") or ""
                if src.name:
                    key = src.object_key(ns)
                    if key not in self.prefs:
                        self.prefs[key] = C.fetch_preference(self.cluster, ns, src, by_object=True)
                    pref = self.prefs[key]
                else:
                    pref = C.PreferenceRead(problem="the VM's preference (%s) is only known by its revision; not "
                                                    "read for a fleet" % src.text())
        vmi_image = C.status(vmi).get("launcherContainerImageVersion") if vmi is not None else None
        pod_image = None
        if pods and vmi is not None:
            chosen, _ = C.choose_pod(pods, vmi)
            pod_image = C.compute_image(chosen) if chosen is not None else None
        key = (vmi_image, pod_image)
        rel = self.releases.get(key)
        if rel is None:
            rel = C.choose_release(self.override, vmi_image, pod_image)
            if rel.source == C.SOURCE_NEWEST and self.cluster is not None:
                if self.cr is None:
                    self.cr = C.read_kubevirt_cr(self.cluster)
                rel = C.choose_release(None, vmi_image, pod_image, self.cr[0], self.cr[1])
            if len(self.releases) < 256:
                self.releases[key] = rel
            self._say(rel)
        return C.build(vm, vmi, release=rel, pods=pods, pref=pref)


def _compact_pod(pod: Dict[str, Any]) -> Dict[str, Any]:
    m = pod.get("metadata") or {}
    return {"metadata": {"name": m.get("name"), "creationTimestamp": m.get("creationTimestamp"),
                         "labels": {"kubevirt.io": (m.get("labels") or {}).get("kubevirt.io")}},
            "spec": {"nodeName": (pod.get("spec") or {}).get("nodeName"),
                     "containers": [{"name": c.get("name"), "image": c.get("image")}
                                    for c in (pod.get("spec") or {}).get("containers") or []
                                    if isinstance(c, dict) and c.get("name") == "compute"]},
            "status": {"phase": (pod.get("status") or {}).get("phase")}}


def cluster_inputs(cluster, o: ListOptions, warn: Optional[Callable[[str], None]] = None
                   ) -> Iterator[Tuple[F.FleetInput, Optional[Callable[[], None]]]]:
    """(input, live job or None) for every VM and standalone VMI in scope, in list order;
    `warn` gets each release warning once."""
    from kubectl_virtio import context as C

    ns = None if o.all_namespaces else cluster.namespace
    pods_by_vmi: Dict[str, List[Dict[str, Any]]] = {}
    pod_stream = None
    if o.live:
        # Launcher pods carry the VMI's uid (kubevirt.io/created-by); kept compact for the join.
        pod_stream = prefetch(cluster.iter_list("pods", ns, LAUNCHER_SELECTOR, PAGE))
    # Both lists are fetched a page ahead in background threads: the next page's request and
    # JSON parsing overlap the rows of the current one.
    vm_pages = prefetch(cluster.iter_list("vms", ns, o.selector, PAGE), depth=1)
    vmi_pages = prefetch(cluster.iter_list("vmis", ns, o.selector, PAGE), depth=1)
    # While the first pages come: the guest table every row reads, and with --live the
    # modules that explain a domain (lxml among them).
    preload(_guest_table, *(("kubectl_virtio.explain", "kubectl_virtio.live") if o.live else ()))
    if pod_stream is not None:
        for page in pod_stream:
            for p in page:
                uid = ((p.get("metadata") or {}).get("labels") or {}).get("kubevirt.io/created-by")
                if uid:
                    pods_by_vmi.setdefault(uid, []).append(_compact_pod(p))
    resolver = Resolver(cluster, o.version, warn)
    for vm, vmi in join(items(vm_pages), items(vmi_pages)):
        running = vmi is not None and C.status(vmi).get("phase") == C.RUNNING
        pods = pods_by_vmi.pop(C.meta(vmi).get("uid") or "", []) if (o.live and running) else []
        try:
            ctx = resolver.context(vm, vmi, pods)
            inp = F.input_from_context(ctx, o.guest_os)
        except (VirtioError, ValueError) as e:
            m = C.meta(vm if vm is not None else vmi)
            inp = F.FleetInput(str(m.get("namespace") or ""), str(m.get("name") or "?"),
                               error=getattr(e, "message", None) or str(e))
            ctx = None
        if vm is not None and vmi is None and o.selector:
            # The VMI carries the template's labels, not the VM's: -l may leave it out.
            st = C.status(vm)
            inp.running = bool(st.get("created")) or st.get("printableStatus") == "Running"
        job = None
        if o.live and running and ctx is not None:
            job = _live_job(cluster, inp, ctx)
        elif o.live and inp.running and vmi is not None:
            inp.error = inp.error or "VMI is %s: no domain to read" % (C.status(vmi).get("phase") or "without a phase")
        yield inp, job


def _guest_table() -> None:
    from kubectl_virtio import guests

    guests.table()


def stream_contexts(cluster, ns: Optional[str], selector: Optional[str], override=None,
                    warn: Optional[Callable[[str], None]] = None):
    """VM contexts of the VMs in scope (standalone VMIs left out), page by page, joined with
    their VMIs; for commands that act on many VMs (set-transitional -l)."""
    resolver = Resolver(cluster, override, warn)
    vm_pages = prefetch(cluster.iter_list("vms", ns, selector, PAGE), depth=1)
    vmi_pages = prefetch(cluster.iter_list("vmis", ns, None, PAGE), depth=1)
    for vm, vmi in join(items(vm_pages), items(vmi_pages)):
        if vm is not None:
            yield resolver.context(vm, vmi)


def ordered_map(source, fn: Callable[[Any], Any], parallel: int):
    """(item, result, exception) for every item of `source`, in order, with fn run on `parallel`
    daemon threads and at most a bounded window of items waiting."""
    pool = DaemonPool(parallel)
    window: "deque[Tuple[Any, Future]]" = deque()
    limit = parallel * 4

    def done(item, fut):
        try:
            return item, fut.result(), None
        except Exception as e:  # noqa: BLE001 - handed to the caller, in order
            return item, None, e

    try:
        for item in source:
            window.append((item, pool.submit(lambda item=item: fn(item))))
            while window and (window[0][1].done() or len(window) > limit):
                yield done(*window.popleft())
        while window:
            yield done(*window.popleft())
    finally:
        for _, fut in window:
            fut.cancel()


def _live_job(cluster, inp: F.FleetInput, ctx):
    def job():
        from kubectl_virtio import context as C
        from kubectl_virtio import domain as D
        from kubectl_virtio import live as L

        pod = ctx.pod
        if pod is None:
            inp.error = "no virt-launcher pod found for the VMI"
            return
        if C.status(pod).get("phase") != C.RUNNING:
            inp.error = "virt-launcher pod %s is %s" % (C.meta(pod).get("name"), C.status(pod).get("phase"))
            return
        try:
            xml = L.virsh_dumpxml(cluster, inp.namespace, C.meta(pod)["name"], ctx.vmi)
            F.apply_domain(inp, D.parse(xml, "the domain XML of %s/%s" % (inp.namespace, inp.name)), ctx=ctx)
        except VirtioError as e:
            inp.error = e.message
    return job


# --- bounded parallel execs, in order -----------------------------------------------------

class DaemonPool:
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
                fut.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                fut.set_exception(e)

    def submit(self, fn) -> Future:
        fut: Future = Future()
        self.q.put((fut, fn))
        return fut


def rows(inputs, o: ListOptions, progress=None) -> Iterator[F.Row]:
    """Evaluate inputs in order; live jobs run `o.parallel` at a time, at most a bounded
    window of rows waits for them."""
    pool = DaemonPool(o.parallel) if o.live else None
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

def run(o: ListOptions, cluster, streams: Streams) -> int:
    from kubectl_virtio import render

    # Parsed pages are trees of dicts without cycles, freed by reference counting as soon as a
    # page is done; the cyclic collector would only rescan them (tens of thousands of objects
    # a page) every few hundred allocations.  Rarely is enough here.
    import gc

    gc.set_threshold(50_000, 20, 100)
    if o.from_dir is not None:
        from kubectl_virtio import mustgather

        inputs = mustgather.inputs(o.from_dir, namespace=o.namespace, guest_os=o.guest_os, err=streams.err,
                                   override=o.version)
        where = "in %s" % o.from_dir
    else:
        inputs = cluster_inputs(cluster, o, lambda m: render.warnings(streams.err, [m]))
        where = "" if o.all_namespaces else "in %s namespace" % cluster.namespace
    progress = None
    if o.live and hasattr(streams.err, "isatty") and streams.err.isatty():
        # tqdm: a maintained progress bar that redraws in place and leaves stdout alone.
        from tqdm import tqdm

        progress = tqdm(total=0, unit="VM", desc="virsh dumpxml", file=streams.err, leave=False)
    printer = render.FleetPrinter(o.output, o.no_headers, out=streams.out)
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
        render.emit(streams.err, "No VirtualMachines found%s." % (" " + where if where else ""))
    if interrupted:
        render.emit(streams.err, "interrupted: %d VMs listed before Ctrl-C" % summary.vms)
        streams.err.flush()
        raise KeyboardInterrupt  # cli: exit 130 at once, without waiting for abandoned execs
    if o.check:
        render.emit(streams.err, "%d VMs, %d at risk, %d at or above --fail-on %s%s" % (
            summary.vms, summary.at_risk, summary.failed, o.fail_on,
            ", %d with errors" % summary.errors if summary.errors else ""))
        if summary.failed:
            return F.EXIT_AT_RISK
        if summary.errors:
            return 1
    return 0
