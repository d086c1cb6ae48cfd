"""Per-node kernel settings and the one masquerade rule of the pod network.

sysctls (all per network namespace; the agent runs in the node's):
  net.ipv4.ip_forward=1, net.bridge.bridge-nf-call-iptables=1 (br_netfilter: bridged
  pod->pod traffic passes iptables, which Service DNAT on one bridge needs),
  rp_filter=2 (loose) for all/default.
Masquerade (nat): chain SKIFFNET-MASQ holds exactly
  -A SKIFFNET-MASQ -s <podCIDR> ! -d <clusterCIDR> -j MASQUERADE
and POSTROUTING jumps to it (ensured with -C || -A). Pod-to-pod traffic keeps its
source IP; only traffic leaving the cluster CIDR is NATed.
Forwarding (filter): chain SKIFFNET-FWD holds
  -A SKIFFNET-FWD -s <clusterCIDR> -j ACCEPT; -A SKIFFNET-FWD -d <clusterCIDR> -j ACCEPT
appended to FORWARD (after the Services proxy's jumps, which drop INVALID first), so pod
traffic is forwarded even where the FORWARD policy is DROP (a Docker engine with its
own iptables rules sets that), as flannel does.
Each chain is refilled with iptables-restore --noflush, leaving every other chain alone.
"""

import logging
import os
import subprocess

from nodeagent.network.names import FWD_CHAIN, NAT_CHAIN

log = logging.getLogger("skiff.agent.network")

SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
    "net/ipv4/conf/all/rp_filter": "2",
    "net/ipv4/conf/default/rp_filter": "2",
}


def ensure_sysctls(proc_root: str = "/proc/sys") -> list:
    """Set SYSCTLS where they differ; returns the keys changed. A missing
    bridge-nf-call-iptables (br_netfilter not loaded) is tried with modprobe once."""
    changed = []
    for key, value in SYSCTLS.items():
        path = os.path.join(proc_root, key)
        if not os.path.exists(path) and key.startswith("net/bridge/"):
            subprocess.run(["modprobe", "br_netfilter"], capture_output=True, check=False)
        try:
            with open(path, encoding="ascii") as f:
                if f.read().strip() == value:
                    continue
            with open(path, "w", encoding="ascii") as f:
                f.write(value)
            changed.append(key)
        except OSError as exc:
            log.warning("event=sysctl_failed key=%s error=%s", key, str(exc).replace(" ", "_"))
    return changed


def masquerade_rules(pod_cidr: str, cluster_cidr: str) -> list:
    return [f"-A {NAT_CHAIN} -s {pod_cidr} ! -d {cluster_cidr} -j MASQUERADE"]


def _run(argv, input_text=None):
    return subprocess.run(argv, input=input_text, capture_output=True, text=True, check=False)


def forward_rules(cluster_cidr: str) -> list:
    return [f"-A {FWD_CHAIN} -s {cluster_cidr} -j ACCEPT", f"-A {FWD_CHAIN} -d {cluster_cidr} -j ACCEPT"]


def ensure_masquerade(pod_cidr: str, cluster_cidr: str) -> bool:
    """Make the nat chain hold exactly our rule and POSTROUTING jump to it; True if changed."""
    return _ensure_chain("nat", NAT_CHAIN, masquerade_rules(pod_cidr, cluster_cidr), "POSTROUTING")


def ensure_forward(cluster_cidr: str) -> bool:
    """Make the filter chain accept the cluster CIDR and FORWARD jump to it; True if changed."""
    return _ensure_chain("filter", FWD_CHAIN, forward_rules(cluster_cidr), "FORWARD")


def _ensure_chain(table: str, chain: str, want: list, builtin: str) -> bool:
    r = _run(["iptables", "-w", "-t", table, "-S", chain])
    have = [line for line in r.stdout.splitlines() if line.startswith("-A ")] if r.returncode == 0 else None
    changed = False
    if have != want:
        text = f"*{table}\n" + f":{chain} - [0:0]\n" + "\n".join(want) + "\nCOMMIT\n"
        r = _run(["iptables-restore", "-w", "--noflush"], text)
        if r.returncode != 0:
            raise RuntimeError(f"iptables-restore: {r.stderr.strip()}")
        changed = True
    jump = [builtin, "-j", chain]
    if _run(["iptables", "-w", "-t", table, "-C"] + jump).returncode != 0:
        r = _run(["iptables", "-w", "-t", table, "-A"] + jump)
        if r.returncode != 0:
            raise RuntimeError(f"iptables -A {builtin}: {r.stderr.strip()}")
        changed = True
    return changed
