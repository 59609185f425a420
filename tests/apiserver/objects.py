"""Factories for realistic KubeVirt objects and virt-launcher pods, as plain JSON dicts.

The shapes follow what a KubeVirt 1.x cluster stores: a VirtualMachine and its
VirtualMachineInstance (with the fields virt-controller and the mutating webhook fill in),
the virt-launcher pod (labels, annotations, owner reference, `compute` + `guest-console-log`
containers, non-root by default), preferences and the ControllerRevision that freezes a
preference for a VM.  Defaults build the `testvm` lab VM of the KubeVirt user guide
(containerdisk + cloudinitdisk on virtio, one masquerade interface `default` on the pod network).

UIDs and launcher pod names are deterministic (derived from kind/namespace/name), so objects
built separately still point at each other; pass `uid=`/`name=` to override.
"""
from __future__ import annotations

import copy
import datetime
import hashlib
import uuid
from typing import NamedTuple

from .patch import merge_patch

DEFAULT_NODE = "node01"
NONROOT_UID = 107
KUBEVIRT_VERSION = "v1.9.0"
LAUNCHER_IMAGE = f"quay.io/kubevirt/virt-launcher:{KUBEVIRT_VERSION}"
RESTART_REQUIRED_MESSAGE = "a non-live-updatable field was changed in the template spec"
CLUSTER_PREFERENCE_KIND = "VirtualMachineClusterPreference"
PREFERENCE_KIND = "VirtualMachinePreference"
_UID_NAMESPACE = uuid.UUID("7f0d3c1e-5b55-4c55-9a49-6b7a1f3d2e10")
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def uid_for(kind: str, namespace: str, name: str) -> str:
    """The deterministic UID the factories give an object unless told otherwise."""
    return str(uuid.uuid5(_UID_NAMESPACE, f"{kind}/{namespace}/{name}"))


def timestamp(when: datetime.datetime | datetime.timedelta | str | None = None) -> str:
    """RFC 3339 UTC seconds.  A timedelta means "that long ago"; None means now."""
    now = datetime.datetime.now(datetime.timezone.utc)
    if when is None:
        when = now
    elif isinstance(when, str):
        return when
    elif isinstance(when, datetime.timedelta):
        when = now - when
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: str, status: str, created: str, message: str | None = None, reason: str | None = None) -> dict:
    c = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": created}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


# --- the lab VM ------------------------------------------------------------------------------

def testvm_template_spec(*, use_virtio_transitional: bool | None = None) -> dict:
    """`spec.template.spec` of the user guide's lab VM `testvm`."""
    spec = {
        "domain": {
            "devices": {
                "disks": [
                    {"name": "containerdisk", "disk": {"bus": "virtio"}},
                    {"name": "cloudinitdisk", "disk": {"bus": "virtio"}},
                ],
                "interfaces": [{"name": "default", "masquerade": {}}],
            },
            "resources": {"requests": {"memory": "64M"}},
        },
        "networks": [{"name": "default", "pod": {}}],
        "volumes": [
            {"name": "containerdisk",
             "containerDisk": {"image": "quay.io/kubevirt/cirros-container-disk-demo"}},
            {"name": "cloudinitdisk", "cloudInitNoCloud": {"userDataBase64": "SGkuXG4="}},
        ],
    }
    if use_virtio_transitional is not None:
        spec["domain"]["devices"]["useVirtioTransitional"] = use_virtio_transitional
    return spec


def vm(name: str = "testvm", namespace: str = "default", *, template_spec: dict | None = None,
       run_strategy: str | None = "Always", running: bool | None = None,
       labels: dict | None = None, annotations: dict | None = None, template_labels: dict | None = None,
       use_virtio_transitional: bool | None = None,
       preference: str | None = None, preference_kind: str = CLUSTER_PREFERENCE_KIND,
       preference_revision: str | None = None,
       restart_required: bool = False, conditions: list[dict] | None = None,
       printable_status: str | None = None, ready: bool | None = None,
       created=None, uid: str | None = None, generation: int = 1) -> dict:
    """A VirtualMachine.

    run_strategy: Always/Halted/Manual/RerunOnFailure/Once; pass `run_strategy=None,
    running=True|False` for the deprecated `spec.running` form.
    use_virtio_transitional: sets `spec.template.spec.domain.devices.useVirtioTransitional`
    (None leaves the field out).
    preference / preference_kind: `spec.preference`; preference_revision names the
    ControllerRevision in `status.preferenceRef.controllerRevisionRef`.
    restart_required: adds the RestartRequired condition KubeVirt sets after a
    non-live-updatable template change.  conditions: extra conditions appended verbatim.
    printable_status / ready default from the run strategy (Running+ready unless halted).
    """
    created_ts = timestamp(created)
    spec_tpl = copy.deepcopy(template_spec) if template_spec is not None else testvm_template_spec()
    if use_virtio_transitional is not None:
        spec_tpl.setdefault("domain", {}).setdefault("devices", {})["useVirtioTransitional"] = use_virtio_transitional
    tpl_labels = {"kubevirt.io/size": "small", "kubevirt.io/domain": name} if template_labels is None \
        else dict(template_labels)
    spec: dict = {}
    if run_strategy is not None:
        spec["runStrategy"] = run_strategy
    if running is not None:
        spec["running"] = running
    spec["template"] = {"metadata": {"creationTimestamp": None, "labels": tpl_labels}, "spec": spec_tpl}
    if preference:
        spec["preference"] = {"kind": preference_kind, "name": preference}

    effective = run_strategy or ("Always" if running else "Halted")
    is_running = effective in ("Always", "RerunOnFailure", "Once") if printable_status is None \
        else printable_status == "Running"
    printable = printable_status or ("Running" if is_running else "Stopped")
    ready = is_running if ready is None else ready
    conds = [_condition("Ready", "True" if ready else "False", created_ts,
                        None if ready else "VMI does not exist", None if ready else "VMINotExists")]
    if is_running:
        conds.append(_condition("LiveMigratable", "True", created_ts))
    if restart_required:
        conds.append(_condition("RestartRequired", "True", created_ts, RESTART_REQUIRED_MESSAGE))
    conds += copy.deepcopy(conditions or [])
    status = {"created": is_running, "ready": ready, "printableStatus": printable, "runStrategy": effective,
              "conditions": conds, "desiredGeneration": generation, "observedGeneration": generation,
              "volumeSnapshotStatuses": [
                  {"name": "containerdisk", "enabled": False,
                   "reason": 'Snapshot is not supported for this volumeSource type [containerdisk]'},
                  {"name": "cloudinitdisk", "enabled": False,
                   "reason": 'Snapshot is not supported for this volumeSource type [cloudinitdisk]'}]}
    if not is_running:
        status.pop("created")
    if preference:
        ref = {"name": preference, "kind": preference_kind}
        if preference_revision:
            ref["controllerRevisionRef"] = {"name": preference_revision}
        status["preferenceRef"] = ref

    meta = {"name": name, "namespace": namespace, "uid": uid or uid_for("VirtualMachine", namespace, name),
            "generation": generation, "creationTimestamp": created_ts,
            "annotations": {"kubevirt.io/latest-observed-api-version": "v1",
                            "kubevirt.io/storage-observed-api-version": "v1", **(annotations or {})},
            "finalizers": ["kubevirt.io/virtualMachineControllerFinalize"]}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": meta, "spec": spec,
            "status": status}


# --- VMI -------------------------------------------------------------------------------------

def launcher_pod_name(vmi_name: str, vmi_uid: str, node: str = DEFAULT_NODE) -> str:
    """`virt-launcher-<vmi>-xxxxx`, the generateName result, stable per (VMI uid, node)."""
    digest = hashlib.sha1(f"{vmi_uid}/{node}".encode()).digest()
    suffix = "".join(_NAME_ALPHABET[b % len(_NAME_ALPHABET)] for b in digest[:5])
    return f"virt-launcher-{vmi_name}-{suffix}"


def vmi(name: str = "testvm", namespace: str = "default", spec: dict | None = None, *,
        uid: str | None = None, node_name: str | None = DEFAULT_NODE, runtime_user: int = NONROOT_UID,
        phase: str = "Running", migration_state: dict | None = None, architecture: str = "amd64",
        owner_vm: dict | bool | None = None, labels: dict | None = None, annotations: dict | None = None,
        use_virtio_transitional: bool | None = None, ip: str = "10.244.0.15", created=None,
        image: str | None = LAUNCHER_IMAGE) -> dict:
    """A VirtualMachineInstance as virt-controller/virt-handler leave it.

    owner_vm: the VM dict (its template spec and labels are used when `spec`/`labels` are
    not given, and it becomes the controller owner), or True for an owner reference to a VM
    of the same name.  runtime_user: 107 = non-root launcher (KubeVirt's default), 0 = root.
    migration_state: copied to `status.migrationState` verbatim.  image: the launcher image
    virt-controller records in status.launcherContainerImageVersion (None: not recorded).
    """
    created_ts = timestamp(created)
    uid = uid or uid_for("VirtualMachineInstance", namespace, name)
    if spec is None:
        if isinstance(owner_vm, dict):
            spec = copy.deepcopy(owner_vm["spec"]["template"]["spec"])
        else:
            spec = testvm_template_spec()
    spec = copy.deepcopy(spec)
    if use_virtio_transitional is not None:
        spec.setdefault("domain", {}).setdefault("devices", {})["useVirtioTransitional"] = use_virtio_transitional
    # Defaults the VMI mutating webhook adds.
    spec.setdefault("architecture", architecture)
    domain = spec.setdefault("domain", {})
    domain.setdefault("machine", {"type": "q35" if architecture == "amd64" else "virt"})
    domain.setdefault("cpu", {"cores": 1, "sockets": 1, "threads": 1, "model": "host-model",
                              "maxSockets": 4})
    domain.setdefault("features", {"acpi": {"enabled": True}})
    domain.setdefault("firmware", {"uuid": str(uuid.uuid5(_UID_NAMESPACE, f"firmware/{namespace}/{name}")),
                                   "serial": uid})
    spec.setdefault("evictionStrategy", "None")

    if labels is None:
        if isinstance(owner_vm, dict):
            labels = dict(owner_vm["spec"]["template"].get("metadata", {}).get("labels") or {})
        else:
            labels = {"kubevirt.io/size": "small", "kubevirt.io/domain": name}
    labels = dict(labels)
    if node_name:
        labels["kubevirt.io/nodeName"] = node_name
    meta = {"name": name, "namespace": namespace, "uid": uid, "generation": 1, "creationTimestamp": created_ts,
            "labels": labels,
            "annotations": {"kubevirt.io/latest-observed-api-version": "v1",
                            "kubevirt.io/storage-observed-api-version": "v1",
                            "kubevirt.io/vm-generation": "1", **(annotations or {})},
            "finalizers": ["kubevirt.io/virtualMachineControllerFinalize", "foregroundDeleteVirtualMachine"]}
    if owner_vm:
        vm_uid = owner_vm["metadata"]["uid"] if isinstance(owner_vm, dict) else uid_for("VirtualMachine", namespace, name)
        vm_name = owner_vm["metadata"]["name"] if isinstance(owner_vm, dict) else name
        meta["ownerReferences"] = [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": vm_name,
                                    "uid": vm_uid, "controller": True, "blockOwnerDeletion": True}]

    running = phase == "Running"
    status: dict = {"phase": phase, "runtimeUser": runtime_user, "guestOSInfo": {},
                    "launcherContainerImageVersion": image, "qosClass": "Burstable",
                    "migrationMethod": "BlockMigration", "migrationTransport": "Unix",
                    "selinuxContext": "none",
                    "currentCPUTopology": {"cores": 1, "sockets": 1, "threads": 1},
                    "conditions": [_condition("Ready", "True" if running else "False", created_ts)],
                    "volumeStatus": [{"name": v["name"], "target": f"vd{chr(ord('a') + i)}"}
                                     for i, v in enumerate(spec.get("volumes", []))]}
    if node_name:
        status["nodeName"] = node_name
        pod_name = launcher_pod_name(name, uid, node_name)
        status["activePods"] = {uid_for("Pod", namespace, pod_name): node_name}
    if running:
        status["conditions"].append(_condition("LiveMigratable", "True", created_ts))
        status["interfaces"] = [{"name": "default", "interfaceName": "eth0", "ipAddress": ip,
                                 "ipAddresses": [ip], "mac": "52:54:00:" + ":".join(uid.replace("-", "")[i:i + 2]
                                                                                     for i in (0, 2, 4)),
                                 "infoSource": "domain, guest-agent", "linkState": "up", "queueCount": 1}]
        status["machine"] = {"type": "pc-q35-rhel9.6.0" if architecture == "amd64" else "virt-rhel9.6.0"}
    if image is None:
        del status["launcherContainerImageVersion"]
    if migration_state is not None:
        status["migrationState"] = copy.deepcopy(migration_state)
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "metadata": meta, "spec": spec,
            "status": status}


# --- virt-launcher pod -----------------------------------------------------------------------

def launcher_pod(vmi_obj: dict, node: str | None = None, created=None, phase: str = "Running", *,
                 name: str | None = None, uid: str | None = None, ip: str | None = None,
                 extra: dict | None = None, image: str | None = None) -> dict:
    """The virt-launcher pod of `vmi_obj` (see docs/kubevirt.md §4 for every label/annotation).

    node defaults to the VMI's status.nodeName.  The runtime user (root or 107) comes from the
    VMI's status.runtimeUser.  `extra` is merged last with JSON-merge-patch rules (None deletes),
    e.g. `extra={"metadata": {"labels": {"kubevirt.io/migrationJobUID": "..."}}}`.  image: the
    containers' image (default: the VMI's status.launcherContainerImageVersion, else LAUNCHER_IMAGE).
    """
    vmeta, vstatus = vmi_obj["metadata"], vmi_obj.get("status", {})
    ns, vmi_name, vmi_uid = vmeta["namespace"], vmeta["name"], vmeta["uid"]
    node = node or vstatus.get("nodeName") or DEFAULT_NODE
    name = name or launcher_pod_name(vmi_name, vmi_uid, node)
    created_ts = timestamp(created)
    image = image or vstatus.get("launcherContainerImageVersion") or LAUNCHER_IMAGE
    user = int(vstatus.get("runtimeUser", NONROOT_UID))
    nonroot = user != 0
    ip = ip or next((i.get("ipAddress") for i in vstatus.get("interfaces") or []), None) or "10.244.0.15"

    labels = {k: v for k, v in (vmeta.get("labels") or {}).items() if k != "kubevirt.io/nodeName"}
    labels.update({"kubevirt.io": "virt-launcher", "kubevirt.io/created-by": vmi_uid,
                   "vm.kubevirt.io/name": vmi_name.split(".")[0][:63], "vmi.kubevirt.io/id": vmi_name})
    annotations = {"kubevirt.io/domain": vmi_name, "kubectl.kubernetes.io/default-container": "compute",
                   "kubevirt.io/migrationTransportUnix": "true",
                   "post.hook.backup.velero.io/command":
                       f'["/usr/bin/virt-freezer", "--unfreeze", "--name", "{vmi_name}", "--namespace", "{ns}"]',
                   "post.hook.backup.velero.io/container": "compute",
                   "pre.hook.backup.velero.io/command":
                       f'["/usr/bin/virt-freezer", "--freeze", "--name", "{vmi_name}", "--namespace", "{ns}"]',
                   "pre.hook.backup.velero.io/container": "compute"}
    command = ["/usr/bin/virt-launcher-monitor", "--qemu-timeout", "302s", "--name", vmi_name, "--uid", vmi_uid,
               "--namespace", ns, "--kubevirt-share-dir", "/var/run/kubevirt", "--ephemeral-disk-dir",
               "/var/run/kubevirt-ephemeral-disks", "--container-disk-dir", "/var/run/kubevirt/container-disks",
               "--grace-period-seconds", "45", "--hook-sidecars", "0", "--ovmf-path", "/usr/share/OVMF"]
    if nonroot:
        command.append("--run-as-nonroot")
    caps = ["NET_BIND_SERVICE"] if nonroot else ["NET_BIND_SERVICE", "SYS_NICE"]
    container_sc = {"allowPrivilegeEscalation": False, "capabilities": {"add": caps, "drop": ["ALL"]},
                    "privileged": False, "runAsUser": user, "runAsGroup": user, "runAsNonRoot": nonroot}
    compute = {"name": "compute", "image": image, "imagePullPolicy": "IfNotPresent", "command": command,
               "env": [{"name": "XDG_CACHE_HOME", "value": "/var/run/kubevirt-private"},
                       {"name": "XDG_CONFIG_HOME", "value": "/var/run/kubevirt-private"},
                       {"name": "XDG_RUNTIME_DIR", "value": "/var/run"},
                       {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                                        "fieldPath": "metadata.name"}}}],
               "resources": {"limits": {"devices.kubevirt.io/kvm": "1", "devices.kubevirt.io/tun": "1",
                                        "devices.kubevirt.io/vhost-net": "1"},
                             "requests": {"cpu": "100m", "devices.kubevirt.io/kvm": "1",
                                          "devices.kubevirt.io/tun": "1", "devices.kubevirt.io/vhost-net": "1",
                                          "ephemeral-storage": "50M", "memory": "294Mi"}},
               "securityContext": container_sc,
               "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
               "volumeMounts": [{"mountPath": "/var/run/kubevirt-private", "name": "private"},
                                {"mountPath": "/var/run/kubevirt", "name": "public"},
                                {"mountPath": "/var/run/libvirt", "name": "libvirt-runtime"}]}
    console = {"name": "guest-console-log", "image": image, "imagePullPolicy": "IfNotPresent",
               "command": ["/usr/bin/virt-tail"],
               "args": ["--logfile", f"/var/run/kubevirt-private/{vmi_uid}/virt-serial0-log"],
               "resources": {"limits": {"cpu": "15m", "memory": "60M"},
                             "requests": {"cpu": "5m", "memory": "35M"}},
               "securityContext": {**container_sc, "capabilities": {"drop": ["ALL"]}},
               "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
               "volumeMounts": [{"mountPath": "/var/run/kubevirt-private", "name": "private",
                                 "readOnly": True}]}
    pod_sc = {"runAsUser": user, "runAsGroup": user, "runAsNonRoot": nonroot,
              "seLinuxOptions": {"type": "virt_launcher.process"}}
    if nonroot:
        pod_sc["fsGroup"] = user
    running = phase == "Running"
    container_statuses = [
        {"name": c["name"], "image": image,
         "imageID": "quay.io/kubevirt/virt-launcher@sha256:" + hashlib.sha256(image.encode()).hexdigest(),
         "containerID": "cri-o://" + hashlib.sha256(f"{name}/{c['name']}".encode()).hexdigest(),
         "ready": running, "restartCount": 0, "started": running,
         "state": {"running": {"startedAt": created_ts}} if running else {"waiting": {"reason": "ContainerCreating"}}}
        for c in (compute, console)]
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "generateName": f"virt-launcher-{vmi_name}-", "namespace": ns,
                     "uid": uid or uid_for("Pod", ns, name), "creationTimestamp": created_ts,
                     "labels": labels, "annotations": annotations,
                     "ownerReferences": [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
                                          "name": vmi_name, "uid": vmi_uid, "controller": True,
                                          "blockOwnerDeletion": True}]},
        "spec": {"automountServiceAccountToken": False, "containers": [compute, console], "dnsPolicy": "ClusterFirst",
                 "enableServiceLinks": False, "hostname": vmi_name.split(".")[0], "nodeName": node,
                 "nodeSelector": {"kubernetes.io/arch": vmi_obj.get("spec", {}).get("architecture", "amd64"),
                                  "kubevirt.io/schedulable": "true"},
                 "preemptionPolicy": "PreemptLowerPriority", "priority": 0, "readinessGates":
                     [{"conditionType": "kubevirt.io/virtual-machine-unpaused"}],
                 "restartPolicy": "Never", "schedulerName": "default-scheduler", "securityContext": pod_sc,
                 "serviceAccountName": "default", "terminationGracePeriodSeconds": 210,
                 "volumes": [{"name": "private", "emptyDir": {}}, {"name": "public", "emptyDir": {}},
                             {"name": "libvirt-runtime", "emptyDir": {}}]},
        "status": {"phase": phase, "hostIP": "192.168.66.101", "hostIPs": [{"ip": "192.168.66.101"}],
                   "podIP": ip if running else None, "podIPs": [{"ip": ip}] if running else None,
                   "qosClass": "Burstable", "startTime": created_ts,
                   "conditions": [{"type": t, "status": "True" if running else "False",
                                   "lastProbeTime": None, "lastTransitionTime": created_ts}
                                  for t in ("kubevirt.io/virtual-machine-unpaused", "PodReadyToStartContainers",
                                            "Initialized", "Ready", "ContainersReady", "PodScheduled")],
                   "containerStatuses": container_statuses},
    }
    for key in ("podIP", "podIPs"):
        if pod["status"][key] is None:
            del pod["status"][key]
    if extra:
        pod = merge_patch(pod, extra)
    return pod


# --- the KubeVirt CR --------------------------------------------------------------------------

def kubevirt_cr(version: str = KUBEVIRT_VERSION, namespace: str = "kubevirt", name: str = "kubevirt") -> dict:
    """The KubeVirt CR as virt-operator leaves it once deployed (status.observedKubeVirtVersion)."""
    return {"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt",
            "metadata": {"name": name, "namespace": namespace, "uid": uid_for("KubeVirt", namespace, name),
                         "generation": 1, "creationTimestamp": timestamp()},
            "spec": {"certificateRotateStrategy": {}, "configuration": {}, "imagePullPolicy": "IfNotPresent",
                     "workloadUpdateStrategy": {}},
            "status": {"phase": "Deployed", "observedKubeVirtVersion": version,
                       "observedKubeVirtRegistry": "quay.io/kubevirt", "targetKubeVirtVersion": version,
                       "targetKubeVirtRegistry": "quay.io/kubevirt", "operatorVersion": version,
                       "conditions": [{"type": "Available", "status": "True", "reason": "AllComponentsReady"}]}}


def launcher_image(version: str = KUBEVIRT_VERSION) -> str:
    return f"quay.io/kubevirt/virt-launcher:{version}"


# --- preferences -----------------------------------------------------------------------------

def _preference_spec(use_virtio_transitional, disk_bus, interface_model, rng) -> dict:
    devices: dict = {}
    if disk_bus:
        devices["preferredDiskBus"] = disk_bus
    if interface_model:
        devices["preferredInterfaceModel"] = interface_model
    if rng:
        devices["preferredRng"] = {}
    if use_virtio_transitional is not None:
        devices["preferredUseVirtioTransitional"] = use_virtio_transitional
    return {"devices": devices} if devices else {}


def _preference(kind: str, name: str, namespace: str | None, spec, use_virtio_transitional, disk_bus,
                interface_model, rng, uid, generation, created) -> dict:
    meta = {"name": name, "uid": uid or uid_for(kind, namespace or "", name), "generation": generation,
            "creationTimestamp": timestamp(created)}
    if namespace:
        meta["namespace"] = namespace
    if spec is None:
        spec = _preference_spec(use_virtio_transitional, disk_bus, interface_model, rng)
    return {"apiVersion": "instancetype.kubevirt.io/v1beta1", "kind": kind, "metadata": meta,
            "spec": copy.deepcopy(spec)}


def preference(name: str, namespace: str = "default", *, spec: dict | None = None,
               use_virtio_transitional: bool | None = None, disk_bus: str | None = None,
               interface_model: str | None = None, rng: bool = False, uid: str | None = None,
               generation: int = 1, created=None) -> dict:
    """A namespaced VirtualMachinePreference (`spec.devices.preferred*`)."""
    return _preference(PREFERENCE_KIND, name, namespace, spec, use_virtio_transitional, disk_bus,
                       interface_model, rng, uid, generation, created)


def cluster_preference(name: str, *, spec: dict | None = None, use_virtio_transitional: bool | None = None,
                       disk_bus: str | None = None, interface_model: str | None = None, rng: bool = False,
                       uid: str | None = None, generation: int = 1, created=None) -> dict:
    """A cluster-scoped VirtualMachineClusterPreference.

    `cluster_preference("linux.virtiotransitional", use_virtio_transitional=True,
    disk_bus="virtio", interface_model="virtio", rng=True)` is the shipped common preference.
    """
    return _preference(CLUSTER_PREFERENCE_KIND, name, None, spec, use_virtio_transitional, disk_bus,
                       interface_model, rng, uid, generation, created)


def preference_revision_name(vm_name: str, pref: dict) -> str:
    """KubeVirt's revision naming: `<vm>-<preference>-<preference uid>-<preference generation>`."""
    m = pref["metadata"]
    return f"{vm_name}-{m['name']}-{m['uid']}-{m.get('generation', 1)}"


def controller_revision(name: str, namespace: str = "default", data: dict | None = None, *,
                        owner_vm: dict | None = None, revision: int = 1, uid: str | None = None,
                        created=None) -> dict:
    """An apps/v1 ControllerRevision whose `.data` is the frozen (preference) object."""
    data = copy.deepcopy(data) if data is not None else {}
    labels = {}
    if data.get("kind"):
        m = data.get("metadata", {})
        labels = {"instancetype.kubevirt.io/object-kind": data["kind"],
                  "instancetype.kubevirt.io/object-name": m.get("name", ""),
                  "instancetype.kubevirt.io/object-uid": m.get("uid", ""),
                  "instancetype.kubevirt.io/object-generation": str(m.get("generation", 1))}
    meta = {"name": name, "namespace": namespace, "uid": uid or uid_for("ControllerRevision", namespace, name),
            "creationTimestamp": timestamp(created), "labels": labels}
    if owner_vm:
        meta["ownerReferences"] = [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                                    "name": owner_vm["metadata"]["name"], "uid": owner_vm["metadata"]["uid"],
                                    "controller": True, "blockOwnerDeletion": True}]
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": meta, "data": data,
            "revision": revision}


# --- domain XML and whole scenarios ----------------------------------------------------------

def minimal_domain_xml(namespace: str, vmi_name: str, vmi_uid: str = "", *, transitional: bool = False) -> str:
    """A small libvirt-style (single-quoted) live domain XML with the lab VM's virtio devices.

    Only a stand-in: realistic libvirt-rendered XML comes from the project's libvirt fixtures.
    """
    model = "virtio-transitional" if transitional else "virtio-non-transitional"
    return f"""<domain type='kvm' id='1'>
  <name>{namespace}_{vmi_name}</name>
  <uuid>{uuid.uuid5(_UID_NAMESPACE, f"firmware/{namespace}/{vmi_name}")}</uuid>
  <metadata>
    <kubevirt xmlns="http://kubevirt.io">
      <uid>{vmi_uid}</uid>
    </kubevirt>
  </metadata>
  <memory unit='KiB'>62500</memory>
  <os>
    <type arch='x86_64' machine='pc-q35-rhel9.6.0'>hvm</type>
  </os>
  <devices>
    <emulator>/usr/libexec/qemu-kvm</emulator>
    <disk type='file' device='disk' model='{model}'>
      <driver name='qemu' type='qcow2' cache='none' error_policy='stop' discard='unmap'/>
      <source file='/var/run/kubevirt-ephemeral-disks/disk-data/containerdisk/disk.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <alias name='ua-containerdisk'/>
    </disk>
    <disk type='file' device='disk' model='{model}'>
      <driver name='qemu' type='raw' cache='none' error_policy='stop' discard='unmap'/>
      <source file='/var/run/kubevirt-ephemeral-disks/cloud-init-data/{namespace}/{vmi_name}/noCloud.iso'/>
      <target dev='vdb' bus='virtio'/>
      <alias name='ua-cloudinitdisk'/>
    </disk>
    <interface type='ethernet'>
      <target dev='tap0' managed='no'/>
      <model type='{model}'/>
      <alias name='ua-default'/>
    </interface>
    <memballoon model='{model}'>
      <alias name='balloon0'/>
    </memballoon>
  </devices>
</domain>
"""


class VMStack(NamedTuple):
    vm: dict
    vmi: dict
    pod: dict


def running_vm(name: str = "testvm", namespace: str = "default", *, root: bool = False,
               node: str = DEFAULT_NODE, vm_kwargs: dict | None = None, vmi_kwargs: dict | None = None,
               pod_kwargs: dict | None = None) -> VMStack:
    """A running VM with its VMI and launcher pod, all consistent with each other."""
    the_vm = vm(name, namespace, **(vm_kwargs or {}))
    the_vmi = vmi(name, namespace, owner_vm=the_vm, node_name=node, runtime_user=0 if root else NONROOT_UID,
                  **(vmi_kwargs or {}))
    the_pod = launcher_pod(the_vmi, node, **(pod_kwargs or {}))
    return VMStack(the_vm, the_vmi, the_pod)
