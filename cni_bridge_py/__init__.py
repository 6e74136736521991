"""cni-bridge-py: a CNI bridge plugin with host-local IPAM."""

__version__ = "0.1.0"
