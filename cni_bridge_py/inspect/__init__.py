"""`cni-bridge-py inspect`: what a network holds, joined from the store, the kernel, the NAT
rules and libcni's cache, with every mismatch named (read-only). model/join are pure; read is
the reading edge; render and graph print; main is the subcommand. Nothing on the plugin's
paths imports this package."""
