"""Cluster DNS on every node (like CoreDNS's kubernetes plugin): resolver.py (pure),
view.py (informer-backed view), server.py (UDP/TCP server on the node bridge address),
resolvconf.py (pods' /etc/resolv.conf)."""
