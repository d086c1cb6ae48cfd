"""Human output like kubectl's: one table per kind, plus yaml/json/name.

Each kind has a row function returning (columns, wide_columns) values; the
headers live next to it so the two cannot drift apart.
"""

import datetime
import json

import yaml

from skiff.api import codec, kinds


def age(timestamp: str, now: datetime.datetime | None = None) -> str:
    """kubectl's short age: 45s, 5m, 3h, 2d (<unknown> when unset)."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        return "<invalid>"
    now = now or datetime.datetime.now(datetime.timezone.utc)
    s = max(0, int((now - then).total_seconds()))
    if s < 120:
        return f"{s}s"
    if s < 3600 * 2:
        return f"{s // 60}m"
    if s < 86400 * 2:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _labels(m) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(m.items())) or "<none>"


def _cond(conditions, ctype):
    for c in conditions:
        if c.type == ctype:
            return c.status
    return ""


# ------------------------------------------------------------------ per kind

def pod_status(p) -> str:
    if p.metadata.deletion_timestamp:
        return "Terminating"
    reason = p.status.reason or p.status.phase or "Pending"
    for i, cs in enumerate(p.status.init_container_statuses):
        if cs.state.HasField("terminated") and cs.state.terminated.exit_code != 0:
            return f"Init:{cs.state.terminated.reason or 'Error'}"
        if cs.state.HasField("waiting") and cs.state.waiting.reason not in ("", "PodInitializing"):
            return f"Init:{cs.state.waiting.reason}"
        if not (cs.state.HasField("terminated") and cs.state.terminated.exit_code == 0):
            return f"Init:{i}/{len(p.spec.init_containers)}"
    for cs in p.status.container_statuses:
        if cs.state.HasField("waiting") and cs.state.waiting.reason:
            reason = cs.state.waiting.reason
        elif cs.state.HasField("terminated") and cs.state.terminated.reason:
            reason = cs.state.terminated.reason
    return reason


def _pod(p):
    ready = sum(1 for cs in p.status.container_statuses if cs.ready)
    restarts = sum(cs.restart_count for cs in p.status.container_statuses)
    return ([f"{ready}/{len(p.spec.containers)}", pod_status(p), str(restarts)],
            [p.status.pod_ip or "<none>", p.spec.node_name or "<none>"])


def _ports(spec) -> str:
    out = []
    for port in spec.ports:
        s = f"{port.port}:{port.node_port}" if port.node_port else str(port.port)
        out.append(f"{s}/{port.protocol or 'TCP'}")
    return ",".join(out) or "<none>"


def _service(s):
    spec = s.spec
    if spec.type == "ExternalName":
        external = spec.external_name
    elif spec.type == "LoadBalancer":
        external = ",".join(i.ip or i.hostname for i in s.status.load_balancer.ingress) or "<pending>"
    else:
        external = ",".join(spec.external_ips) or "<none>"
    selector = ",".join(f"{k}={v}" for k, v in sorted(spec.selector.items())) or "<none>"
    return [spec.type or "ClusterIP", spec.cluster_ip or "<none>", external, _ports(spec)], [selector]


def _containers(template):
    cs = template.spec.containers
    return ",".join(c.name for c in cs), ",".join(c.image for c in cs)


def _selector_text(sel) -> str:
    parts = [f"{k}={v}" for k, v in sorted(sel.match_labels.items())]
    for e in sel.match_expressions:
        parts.append(f"{e.key} {e.operator.lower()} ({','.join(e.values)})")
    return ",".join(parts) or "<none>"


def _deployment(d):
    want = d.spec.replicas if d.spec.HasField("replicas") else 1
    names, images = _containers(d.spec.template)
    return ([f"{d.status.ready_replicas}/{want}", str(d.status.updated_replicas),
             str(d.status.available_replicas)], [names, images, _selector_text(d.spec.selector)])


def _replicaset(r):
    want = r.spec.replicas if r.spec.HasField("replicas") else 1
    names, images = _containers(r.spec.template)
    return ([str(want), str(r.status.replicas), str(r.status.ready_replicas)],
            [names, images, _selector_text(r.spec.selector)])


def _namespace(n):
    return [n.status.phase or "Active"], []


def _node(n):
    ready = _cond(n.status.conditions, "Ready")
    # kubectl shows NotReady for both False and Unknown (a node that stopped reporting).
    status = "Ready" if ready == "True" else "NotReady"
    if n.spec.unschedulable:
        status += ",SchedulingDisabled"
    roles = sorted(k.split("/", 1)[1] for k in n.metadata.labels
                   if k.startswith("node-role.kubernetes.io/")) or ["<none>"]
    internal = next((a.address for a in n.status.addresses if a.type == "InternalIP"), "<none>")
    info = n.status.node_info
    return ([status, ",".join(roles)], [internal, info.os_image or "<unknown>",
                                        info.kernel_version or "<unknown>",
                                        info.container_runtime_version or "<unknown>"])


def _node_internal_ip(n):
    return next((a.address for a in n.status.addresses if a.type == "InternalIP"), "<none>")


def _node_version(n):
    return n.status.node_info.kubelet_version or "<unknown>"


def _configmap(c):
    return [str(len(c.data) + len(c.binary_data))], []


def _secret(s):
    return [s.type or "Opaque", str(len(s.data))], []


def _endpoints(e):
    addrs = []
    for sub in e.subsets:
        for a in sub.addresses:
            for p in sub.ports or [None]:
                addrs.append(f"{a.ip}:{p.port}" if p else a.ip)
    shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [shown or "<none>"], []


def _event(e):
    obj = e.involved_object
    return [e.type, e.reason, f"{obj.kind.lower()}/{obj.name}", e.message], []


# kind -> (headers, wide headers, row function); NAME first and AGE last are added.
TABLES = {
    "Pod": (["READY", "STATUS", "RESTARTS"], ["IP", "NODE"], _pod),
    "Service": (["TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"], ["SELECTOR"], _service),
    "Deployment": (["READY", "UP-TO-DATE", "AVAILABLE"], ["CONTAINERS", "IMAGES", "SELECTOR"],
                   _deployment),
    "ReplicaSet": (["DESIRED", "CURRENT", "READY"], ["CONTAINERS", "IMAGES", "SELECTOR"], _replicaset),
    "Namespace": (["STATUS"], [], _namespace),
    "Node": (["STATUS", "ROLES"], ["OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"], _node),
    "ConfigMap": (["DATA"], [], _configmap),
    "Secret": (["TYPE", "DATA"], [], _secret),
    "Endpoints": (["ENDPOINTS"], [], _endpoints),
    "Event": (["TYPE", "REASON", "OBJECT", "MESSAGE"], [], _event),
}


def event_order(e):
    """Oldest first; within one second (timestamps have second resolution), in store order."""
    return (e.last_timestamp or e.metadata.creation_timestamp, int(e.metadata.resource_version or 0))


def events_table(items, *, all_namespaces=False, headers=True, now=None) -> str:
    """kubectl's `get events`: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, oldest first."""
    items = sorted(items, key=event_order)
    head = (["NAMESPACE"] if all_namespaces else []) + ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    rows = [head] if headers else []
    for e in items:
        obj = e.involved_object
        seen = age(e.last_timestamp or e.metadata.creation_timestamp, now)
        if e.count > 1:
            seen += f" (x{e.count})"
        row = ([e.metadata.namespace] if all_namespaces else [])
        row += [seen, e.type, e.reason, f"{obj.kind.lower()}/{obj.name}", e.message]
        rows.append(row)
    return format_rows(rows)


def table(kind, items, *, wide=False, all_namespaces=False, show_labels=False,
          headers=True, now=None) -> str:
    """Render items (all of one kind) as kubectl renders them."""
    if kind.name == "Event" and not show_labels:
        return events_table(items, all_namespaces=all_namespaces, headers=headers, now=now)
    cols, wide_cols, row_fn = TABLES[kind.name]
    head = (["NAMESPACE"] if all_namespaces and kind.namespaced else []) + ["NAME"] + cols
    if kind.name == "Node":
        head += ["AGE", "VERSION", "INTERNAL-IP"]
    else:
        head += ["AGE"]
    if wide:
        head += wide_cols
    if show_labels:
        head += ["LABELS"]
    rows = [head] if headers else []
    for obj in items:
        main, extra = row_fn(obj)
        row = ([obj.metadata.namespace] if all_namespaces and kind.namespaced else [])
        row += [obj.metadata.name] + main + [age(obj.metadata.creation_timestamp, now)]
        if kind.name == "Node":
            row += [_node_version(obj), _node_internal_ip(obj)]
        if wide:
            row += extra[1:] if kind.name == "Node" else extra
        if show_labels:
            row.append(_labels(obj.metadata.labels))
        rows.append(row)
    return format_rows(rows)


def format_rows(rows) -> str:
    if not rows:
        return ""
    widths = [max(len(str(r[i])) for r in rows if i < len(r)) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [str(c).ljust(widths[i]) if i < len(r) - 1 else str(c) for i, c in enumerate(r)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def as_dict(obj) -> dict:
    return codec.encode(obj)


def _list_doc(objs) -> dict:
    return {"apiVersion": "v1", "kind": "List", "items": [as_dict(o) for o in objs]}


def as_yaml(objs) -> str:
    """One object as itself, several as a List (what `get NAME -o yaml` prints)."""
    if len(objs) == 1:
        return yaml.safe_dump(as_dict(objs[0]), sort_keys=False, default_flow_style=False)
    return as_yaml_list(objs)


def as_json(objs) -> str:
    if len(objs) == 1:
        return json.dumps(as_dict(objs[0]), indent=4)
    return as_json_list(objs)


def as_yaml_list(objs) -> str:
    """Always a List (what `get KIND -o yaml` prints, even for one item)."""
    return yaml.safe_dump(_list_doc(objs), sort_keys=False, default_flow_style=False)


def as_json_list(objs) -> str:
    return json.dumps(_list_doc(objs), indent=4)


def as_name(obj) -> str:
    k = kinds.of_message(obj)
    return f"{k.name.lower()}{'.' + k.group if k.group else ''}/{obj.metadata.name}"
