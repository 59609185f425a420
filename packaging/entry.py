"""Entry point of the self-contained (PyInstaller) build.

The same executable serves as the plugin (`kubectl-virtio`, the name krew links it under)
and as kubectl's completion helper when it is run under the name
`kubectl_complete-virtio` (a symlink next to krew's; see `kubectl virtio completion`).
"""
import os
import sys


def _run() -> int:
    name = os.path.basename(sys.argv[0] if sys.argv else "").lower()
    if name.startswith("kubectl_complete-"):
        from kubectl_virtio.completion import main
    else:
        from kubectl_virtio.cli import main
    return main()


if __name__ == "__main__":
    sys.exit(_run())
