"""Live commands on a resolved VM context: `explain VM`, `dumpxml VM`, `list`.

Each command resolves its VM(s) once through `context` (the only place that derives the flag,
its origin, the live flag, restart pending, arch, machine, the launcher pod and the release)
and reads the domain XML with `virsh dumpxml` in the launcher pod's compute container.  The
cluster adapter and the output streams are handed in (`run(cluster, streams)`).
"""
from __future__ import annotations

from typing import Optional

from kubectl_virtio import context as C
from kubectl_virtio.cmdline import ClusterFlags, Options, Streams, preload
from kubectl_virtio.errors import ClusterError, InputError

NONROOT_URI = "qemu+unix:///session?socket=/var/run/libvirt/virtqemud-sock"
COMPUTE = "compute"


def virsh_dumpxml(cluster, ns: str, pod: str, vmi) -> str:
    """`virsh [-c URI] dumpxml NS_NAME` in the compute container; the URI KubeVirt's launcher
    uses first (virt-launcher.go createLibvirtConnection), the other form if that fails."""
    name = "%s_%s" % (ns, C.meta(vmi).get("name"))
    plain = ["virsh", "dumpxml", name]
    session = ["virsh", "-c", NONROOT_URI, "dumpxml", name]
    attempts = [session, plain] if C.nonroot(vmi) else [plain, session]
    first = None
    for argv in attempts:
        res = cluster.exec(ns, pod, COMPUTE, argv)
        if res.returncode == 0 and res.stdout.strip():
            return res.stdout
        if first is None:
            first = (argv, res)
        if "failed to get domain" in res.stderr or "Domain not found" in res.stderr:
            break  # the connection worked; another URI will not find it either
    argv, res = first
    msg = (res.stderr.strip() or res.stdout.strip() or "exit status %d" % res.returncode).splitlines()
    raise VirshFailed("`%s` failed in pod %s (container %s): %s" % (" ".join(argv), pod, COMPUTE, " ".join(msg[:3])),
                      "is the VM still running? `kubectl get vmi %s -n %s`" % (C.meta(vmi).get("name"), ns))


class VirshFailed(ClusterError):
    """virsh ran and failed (its own message): unlike an exec failure, not degraded to a prediction."""


# --- explain VM -------------------------------------------------------------------------

def explain_vm(opts, cluster, streams: Streams):
    """The explanation of a live VM (opts: cli.ExplainOptions, validated)."""
    # explain, domain (lxml) and render are imported while the API server answers.
    preload("kubectl_virtio.explain", "kubectl_virtio.render")
    ctx = C.resolve(cluster, cluster.namespace, opts.name, kind=opts.kind, override=opts.version, arch=opts.arch)
    from kubectl_virtio import domain as D
    from kubectl_virtio import explain as E

    findings = [E.Finding(n.severity, n.message) for n in ctx.notes]
    dom = None
    agent_devices = None
    name, phase = ctx.name, ctx.phase
    if ctx.vmi is None:
        findings.append(E.Finding("info", "VM %s is not running (no VMI): this is the prediction for its next start"
                                  % name))
    elif phase in C.GONE:
        findings.append(E.Finding("info", "VMI %s is %s: its domain is gone; this is the prediction for the next start"
                                  % (name, phase)))
    elif phase != C.RUNNING:
        findings.append(E.Finding("info", "VMI %s is %s: no domain yet; this is the prediction"
                                  % (name, phase or "without a phase")))
    elif ctx.pod is None:
        findings.append(E.Finding("warning", "no virt-launcher pod found for VMI %s (label kubevirt.io/created-by=%s)"
                                  % (name, C.meta(ctx.vmi).get("uid"))))
    elif C.status(ctx.pod).get("phase") != C.RUNNING:
        findings.append(E.Finding("info", "virt-launcher pod %s is %s: no domain to read yet; this is the prediction"
                                  % (C.meta(ctx.pod).get("name"), C.status(ctx.pod).get("phase") or "without a phase")))
    else:
        pod = C.meta(ctx.pod)["name"]
        try:
            dom = D.parse(virsh_dumpxml(cluster, ctx.namespace, pod, ctx.vmi), "the live domain XML of %s" % name)
            if getattr(opts, "guest_agent", False):  # opt in: libvirt taints the domain
                from kubectl_virtio import guest_agent

                agent_devices, why = guest_agent.get_devices(cluster, ctx.namespace, pod, C.meta(ctx.vmi).get("name"),
                                                             C.nonroot(ctx.vmi))
                if why:
                    findings.append(E.Finding("warning", "--guest-agent: " + why))
        except (ClusterError, InputError) as e:
            # Whatever broke the exec (RBAC, a timeout, the kubelet, virsh) or cut its output (a
            # domain XML that does not parse whole), the prediction still stands: say why the
            # live models are missing, and go on.
            hint = " (%s)" % e.hint if e.hint else ""
            findings.append(E.Finding("warning", "no live XML: %s%s; showing the prediction" % (e.message, hint)))
            from kubectl_virtio import render

            render.warnings(streams.err, ["cannot read the domain XML from %s: %s" % (pod, e.message)])
    exp = E.explain(ctx.spec, dom, arch=opts.arch or (ctx.arch if dom is None else None),
                    running_vmi=ctx.running_spec, version=ctx.release.version,
                    restart_condition=ctx.restart_pending, guest_os=opts.guest_os, namespace=ctx.namespace,
                    name=name, extra_findings=findings, vm_running=ctx.running, preference_unread=ctx.preference_unread,
                    guest_devices=agent_devices)
    exp.kubevirt_version_source = ctx.release.source
    return exp


# --- dumpxml VM -------------------------------------------------------------------------

class DumpxmlOptions(Options):
    vm: str = ""
    flags: Optional[ClusterFlags] = None
    kind: Optional[str] = None
    name: str = ""
    needs_cluster = True

    @classmethod
    def complete(cls, args) -> "DumpxmlOptions":
        return cls(vm=args.vm, flags=ClusterFlags.from_args(args))

    def validate(self) -> None:
        from kubectl_virtio import validate

        self.kind, self.name = validate.vm_ref(self.vm)
        validate.namespace(self.flags.namespace)

    def run(self, cluster, streams: Streams) -> int:
        ns, name = cluster.namespace, self.name
        ctx = C.resolve(cluster, ns, name, kind=self.kind, preference=False, release=False)
        if ctx.vmi is None:
            raise ClusterError("VM %s in namespace %s is not running: there is no domain XML" % (name, ns),
                               "start it (`virtctl start %s`) or use `kubectl virtio explain %s` for the prediction"
                               % (name, name))
        phase = ctx.phase
        if phase != C.RUNNING:
            raise ClusterError("VMI %s in namespace %s is %s: there is no domain XML %s" % (
                name, ns, phase or "without a phase", "any more" if phase in C.GONE else "yet"),
                "`kubectl get vmi %s -n %s -w` shows when it runs; `kubectl virtio explain %s` predicts the models"
                % (name, ns, name))
        pod = ctx.pod
        if pod is None:
            raise ClusterError("no virt-launcher pod for VMI %s in namespace %s" % (name, ns))
        if C.status(pod).get("phase") != C.RUNNING:
            raise ClusterError("virt-launcher pod %s is %s: there is no domain XML yet"
                               % (C.meta(pod).get("name"), C.status(pod).get("phase") or "without a phase"),
                               "`kubectl get pod %s -n %s` shows why" % (C.meta(pod).get("name"), ns))
        from kubectl_virtio import render

        render.notes(streams.err, ctx.notes)
        xml = virsh_dumpxml(cluster, ns, C.meta(pod)["name"], ctx.vmi)
        _check_whole_xml(xml, "`virsh dumpxml` in pod %s" % C.meta(pod)["name"])
        streams.out.write(xml)
        return 0


def _check_whole_xml(text: str, what: str) -> None:
    """Half a domain (an exec cut short that still ended in Success) is an error, never
    printed: the text must parse as one whole XML document (bounded parser: no DTD, no
    entities, no network, lxml's default depth limit)."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        etree.fromstring(text.encode("utf-8"), parser)
    except etree.XMLSyntaxError as e:
        raise ClusterError("%s did not return a whole domain XML (%s)" % (what, str(e)[:200]),
                           "try again; if it persists, check the pod's compute container") from None
