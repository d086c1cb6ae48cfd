"""Probes and lifecycle hooks: exec in the container, httpGet/tcpSocket inside the pod's
network namespace (handlers.py, netns.py), and per-container probe workers (manager.py)."""
