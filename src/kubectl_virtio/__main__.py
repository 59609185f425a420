import sys

from kubectl_virtio.cli import main

sys.exit(main())
