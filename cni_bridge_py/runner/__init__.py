"""The cnitool-compatible runner: `cni-bridge-py cnitool add|check|del|gc|status NET NETNS`."""
