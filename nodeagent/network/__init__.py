"""The pod network of one node (flannel-shaped, built in): bridge, veths, pod IPAM,
routes to the other nodes' pod CIDRs (host-gw or vxlan), masquerade. See manager.py."""
