"""The benchmark of issue 5: the reference bridge + host-local plugins and ours, interleaved in
one run on identical configs, inside throwaway namespaces (`python -m tools.bench`).

Never imported by the plugin's own paths (cli, front, verbs, agent): it is a developer tool.
"""
