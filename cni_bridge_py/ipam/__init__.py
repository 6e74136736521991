"""host-local IPAM: pure range arithmetic and allocation, plus the on-disk store."""
