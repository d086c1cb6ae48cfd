"""Service environment variables (kubelet's service links), pure.

For each Service of the pod's namespace that has a ClusterIP (not headless, not
ExternalName), with NAME = the service name upper-cased, '-' -> '_':

    NAME_SERVICE_HOST=<clusterIP>          NAME_SERVICE_PORT=<first port>
    NAME_SERVICE_PORT_<PORTNAME>=<port>    (named ports)
    NAME_PORT=<proto>://<ip>:<first port>  (docker-link style, per port:)
    NAME_PORT_<port>_<PROTO>=<proto>://<ip>:<port>, ..._PROTO, ..._PORT, ..._ADDR

Nothing when spec.enableServiceLinks is false, except the API's own Service
default/kubernetes (KUBERNETES_SERVICE_HOST/PORT...), which every pod gets, as from
kubelet; a Service named kubernetes in the pod's namespace takes its place. Services
are taken in name order, so the result depends only on the inputs. The container's own
env overrides these (the caller seeds the environment with them before env/envFrom).
"""

MASTER = ("default", "kubernetes")


def _var(name: str) -> str:
    return name.upper().replace("-", "_")


def service_env(pod, services) -> list:
    """[(name, value)] for the services of the pod's namespace and default/kubernetes."""
    spec = pod.spec
    links = not (spec.HasField("enable_service_links") and not spec.enable_service_links)
    ns = pod.metadata.namespace
    chosen = {}
    for s in services:
        ip = s.spec.cluster_ip
        if not ip or ip == "None" or s.spec.type == "ExternalName" or not s.spec.ports:
            continue
        if (s.metadata.namespace, s.metadata.name) == MASTER:
            chosen.setdefault(s.metadata.name, s)
        elif links and s.metadata.namespace == ns:
            chosen[s.metadata.name] = s
    out = []
    for _, svc in sorted(chosen.items()):
        ip = svc.spec.cluster_ip
        prefix = _var(svc.metadata.name)
        ports = list(svc.spec.ports)
        out.append((f"{prefix}_SERVICE_HOST", ip))
        out.append((f"{prefix}_SERVICE_PORT", str(ports[0].port)))
        for p in ports:
            if p.name:
                out.append((f"{prefix}_SERVICE_PORT_{_var(p.name)}", str(p.port)))
        first_proto = (ports[0].protocol or "TCP").lower()
        out.append((f"{prefix}_PORT", f"{first_proto}://{ip}:{ports[0].port}"))
        for p in ports:
            proto = p.protocol or "TCP"
            base = f"{prefix}_PORT_{p.port}_{proto.upper()}"
            out.append((base, f"{proto.lower()}://{ip}:{p.port}"))
            out.append((f"{base}_PROTO", proto.lower()))
            out.append((f"{base}_PORT", str(p.port)))
            out.append((f"{base}_ADDR", ip))
    return out
