"""What the root suites (integration, conformance, reliability, runtimes) share: throwaway
network namespaces (netns), the installed plugin run as a runtime runs it (plugin, runtime),
the resident agent (agent), before/after state snapshots (state) and each suite's
precondition check (preconditions). The pytest fixtures built on them are in tests/conftest.py.
"""
