"""A pod's /etc/resolv.conf from its dnsPolicy (kubelet's dns configurer), pure.

    ClusterFirst (default)       nameserver <node DNS>, search <ns>.svc.<zone> svc.<zone> <zone>,
                                 options ndots:5 — merged with spec.dnsConfig
    ClusterFirstWithHostNet      the same, also for hostNetwork pods
    ClusterFirst + hostNetwork   falls back to Default (as in Kubernetes)
    Default                      the node's resolv.conf (None: Docker's copy of it) — merged
                                 with dnsConfig when one is given
    None                         only spec.dnsConfig

Returns the file's text, or None when the container should keep the engine's own file
(Default without dnsConfig; no cluster DNS on this node for ClusterFirst).
Merging (dnsConfig): nameservers and searches appended (duplicates dropped), options
replace options of the same name; Kubernetes' limits (3 nameservers, 32 searches) apply.
"""

ZONE = "cluster.local"
MAX_NAMESERVERS = 3
MAX_SEARCHES = 32


def parse(text: str) -> tuple:
    """(nameservers, searches, options) of a resolv.conf text."""
    ns, search, opts = [], [], []
    for line in (text or "").splitlines():
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if parts[0] == "nameserver" and len(parts) > 1:
            ns.append(parts[1])
        elif parts[0] in ("search", "domain"):
            search = parts[1:]
        elif parts[0] == "options":
            opts += parts[1:]
    return ns, search, opts


def _uniq(items):
    out = []
    for i in items:
        if i not in out:
            out.append(i)
    return out


def _merge_options(base: list, extra: list) -> list:
    out = {}
    for opt in list(base) + list(extra):
        out[opt.split(":", 1)[0]] = opt
    return list(out.values())


def render(nameservers, searches, options) -> str:
    lines = ["# Kubernetes-managed resolv.conf (skiff)."]
    lines += [f"nameserver {n}" for n in nameservers]
    if searches:
        lines.append("search " + " ".join(searches))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def resolv_conf(pod, cluster_dns: str, node_resolv: str = "", zone: str = ZONE):
    """cluster_dns: the node DNS address ("" = none on this node); node_resolv: the node's
    /etc/resolv.conf text (only read for Default with a dnsConfig)."""
    spec = pod.spec
    policy = spec.dns_policy or "ClusterFirst"
    if policy == "ClusterFirst" and spec.host_network:
        policy = "Default"
    cfg = spec.dns_config if spec.HasField("dns_config") else None
    extra_ns = list(cfg.nameservers) if cfg else []
    extra_search = list(cfg.searches) if cfg else []
    extra_opts = [o.name + (f":{o.value}" if o.value else "") for o in cfg.options] if cfg else []
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        if not cluster_dns:
            policy = "Default"
        else:
            ns = pod.metadata.namespace
            base = ([cluster_dns], [f"{ns}.svc.{zone}", f"svc.{zone}", zone], ["ndots:5"])
    if policy == "Default":
        if cfg is None:
            return None
        base = parse(node_resolv)
    elif policy == "None":
        base = ([], [], [])
    nameservers = _uniq(base[0] + extra_ns)[:MAX_NAMESERVERS]
    searches = _uniq(base[1] + extra_search)[:MAX_SEARCHES]
    return render(nameservers, searches, _merge_options(base[2], extra_opts))
