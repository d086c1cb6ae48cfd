"""Per-node kernel settings and the one masquerade rule of the pod network.

sysctls (all per network namespace; the agent runs in the node's):
  net.ipv4.ip_forward=1, net.bridge.bridge-nf-call-iptables=1 (br_netfilter: bridged
  pod->pod traffic passes iptables, which Service DNAT on one bridge needs),
  rp_filter=2 (loose) for all/default.
Masquerade (nat): chain SKIFFNET-MASQ holds exactly
  -A SKIFFNET-MASQ -s <podCIDR> ! -d <clusterCIDR> -j MASQUERADE
and POSTROUTING jumps to it. Pod-to-pod traffic keeps its
source IP; only traffic leaving the cluster CIDR is NATed.
Forwarding (filter): chain SKIFFNET-FWD holds
  -A SKIFFNET-FWD -s <clusterCIDR> -j ACCEPT; -A SKIFFNET-FWD -d <clusterCIDR> -j ACCEPT
appended to FORWARD (after the Services proxy's jumps, which drop INVALID first), so pod
traffic is forwarded even where the FORWARD policy is DROP (a Docker engine with its
own iptables rules sets that), as flannel does.
ensure_chains: one iptables-save; when a chain or a jump differs, one iptables-restore
--noflush refills our chains and appends the missing jumps, leaving every other chain alone.
The pod network calls it on its FULL passes (every 30 s) and when nf_tables reports a
change (docs/networking.md fact 13), not on a timer of its own.
"""

import logging
import os
import subprocess

from nodeagent.network.names import FWD_CHAIN, NAT_CHAIN
from nodeagent.proxy.iptables import Iptables

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


def forward_rules(cluster_cidr: str) -> list:
    return [f"-A {FWD_CHAIN} -s {cluster_cidr} -j ACCEPT", f"-A {FWD_CHAIN} -d {cluster_cidr} -j ACCEPT"]


def desired_chains(pod_cidr: str, cluster_cidr: str) -> list:
    """(table, our chain, its exact rules, the built-in chain that must jump to it)."""
    return [("nat", NAT_CHAIN, masquerade_rules(pod_cidr, cluster_cidr), "POSTROUTING"),
            ("filter", FWD_CHAIN, forward_rules(cluster_cidr), "FORWARD")]


def parse_save(text: str) -> dict:
    """iptables-save output -> {table: [rule lines ("-A ...") in order]}."""
    tables: dict = {}
    rules = None
    for line in text.splitlines():
        if line.startswith("*"):
            rules = tables.setdefault(line[1:].strip(), [])
        elif line.startswith("-A ") and rules is not None:
            rules.append(line.strip())
        elif line.startswith("COMMIT"):
            rules = None
    return tables


def plan_chains(saved: str, chains: list) -> str | None:
    """Pure: the iptables-restore --noflush input that makes `saved` hold `chains`
    (each chain exactly its rules, each built-in jumping to it), or None when it
    already does. Declaring a chain of ours flushes and refills it; a missing jump is
    appended; nothing else in any table is named, so --noflush leaves it alone."""
    tables = parse_save(saved)
    out = []
    for table, chain, want, builtin in chains:
        have = tables.get(table, [])
        mine = [r for r in have if r.startswith(f"-A {chain} ")]
        jump = f"-A {builtin} -j {chain}"
        lines = []
        if mine != want:
            lines += [f":{chain} - [0:0]"] + want
        if jump not in have:      # (want is never empty: mine == want means the chain exists)
            lines.append(jump)
        if lines:
            out += [f"*{table}"] + lines + ["COMMIT"]
    return "\n".join(out) + "\n" if out else None


def ensure_chains(pod_cidr: str, cluster_cidr: str, iptables: Iptables | None = None) -> bool:
    """Make the masquerade and forward chains exact and jumped to; True if changed.
    One iptables-save per call, and one iptables-restore only when something differs."""
    ipt = iptables or Iptables()
    text = plan_chains(ipt.save(), desired_chains(pod_cidr, cluster_cidr))
    if text is None:
        return False
    ipt.restore(text)
    return True
