"""Beyond one node: per-node pod subnets leased from etcd, routes or VXLAN between nodes."""
