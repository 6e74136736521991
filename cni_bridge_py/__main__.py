import sys

from cni_bridge_py.cli import main

sys.exit(main())
