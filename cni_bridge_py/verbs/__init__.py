"""The verbs ADD, DEL, CHECK, GC and STATUS over the ports they receive (cni_bridge_py.ports);
dispatch.py is the verb table the process edge hands to the front, system.py the real ports."""
