"""Masquerading for traffic leaving the subnet: rule layout (pure) and backends (I/O)."""
