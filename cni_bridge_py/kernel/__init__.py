"""The kernel edge: netlink (pyroute2), namespaces and sysctls. Nothing above imports pyroute2."""
