"""Test doubles of the ports the core receives: in-memory and recording fakes (no root)."""
