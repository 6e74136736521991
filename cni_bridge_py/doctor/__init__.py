"""`cni-bridge-py doctor`: what would break or is broken on this host's bridge networks, one
line each with what to do; --fix runs GC (issue 13)."""
