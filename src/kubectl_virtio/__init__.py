"""kubectl-virtio: explain, check and fix the virtio models of KubeVirt VMs."""

__version__ = "0.1.0"
