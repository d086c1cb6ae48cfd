"""Validation of the pod spec, shared by Pods and the pod templates of ReplicaSets and Deployments.

validate_pod_spec(spec, path, errs) checks a defaulted PodSpec at `path` ("spec"
for a Pod, "spec.template.spec" for a template): volumes, containers (ports,
env, resources, mounts, probes, lifecycle handlers, securityContext: in
securitycontext_validation.py), policies, tolerations and affinity. What a kind adds around its pod spec (a template's selector, a Pod's
update rules) lives in the kind's module; the checkers every kind shares live in
validation.py.
"""

import re

from skiff.api import objects_pb2 as pb
from skiff.api.errors import FieldError, join
from skiff.api.scheduling_validation import validate_pod_affinity, validate_topology_spread
from skiff.api.securitycontext_validation import validate_pod_security_context, validate_security_context
from skiff.api.selectors import (
    validate_dns1123_label, validate_dns1123_subdomain, validate_label_key, validate_label_value,
)
from skiff.api.validation import (
    PROTOCOLS, TAINT_EFFECTS, check, duplicate, enum, forbidden, in_range, invalid, non_negative, required, show,
    validate_config_key, validate_ip, validate_labels, validate_port_name, validate_port_ref,
    validate_quantity, validate_relative_path,
)

RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
DNS_POLICIES = ("ClusterFirst", "Default", "None", "ClusterFirstWithHostNet")
TOLERATION_OPERATORS = ("Exists", "Equal")
NODE_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                   "CharDevice", "BlockDevice")
ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
                   "status.podIPs")
# A downwardAPI file: Kubernetes' volume set (all labels / annotations as one file) plus what
# env fieldRef gives (skiff's superset: the node agent rewrites the files on every sync).
VOLUME_FIELD_PATHS = ("metadata.annotations", "metadata.labels") + ENV_FIELD_PATHS
ENV_RESOURCE_FIELDS = tuple(f"{w}.{r}" for w in ("limits", "requests") for r in STANDARD_RESOURCES)

_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_LABEL_SUBSCRIPT = re.compile(r"metadata\.(labels|annotations)\['(.+)'\]")


def validate_env_name(name: str) -> str | None:
    if not _ENV_NAME.fullmatch(name):
        return ("a valid environment variable name must consist of alphabetic characters, digits, "
                "'_', '-' or '.', and must not start with a digit (e.g. 'MY_VAR', 'my.env-name')")
    return None


# ---------------------------------------------------------------- pod spec

def validate_pod_spec(spec: pb.PodSpec, path, errs) -> None:
    """A PodSpec at path ("spec" for Pods, "spec.template.spec" for templates)."""
    volumes = _validate_volumes(spec.volumes, join(path, "volumes"), errs)
    if not spec.containers:
        required(errs, join(path, "containers"), "a pod needs at least one container")
    _validate_containers(spec, path, volumes, errs)
    validate_pod_security_context(spec, path, errs)
    enum(errs, join(path, "restartPolicy"), spec.restart_policy, RESTART_POLICIES)
    enum(errs, join(path, "dnsPolicy"), spec.dns_policy, DNS_POLICIES)
    if spec.dns_policy == "None" and not spec.dns_config.nameservers:
        required(errs, join(path, "dnsConfig.nameservers"), "must provide at least one DNS nameserver "
                 "when `dnsPolicy` is 'None'")
    for i, ns in enumerate(spec.dns_config.nameservers):
        check(errs, f"{path}.dnsConfig.nameservers[{i}]", ns, validate_ip(ns))
    if spec.HasField("termination_grace_period_seconds"):
        non_negative(errs, join(path, "terminationGracePeriodSeconds"), spec.termination_grace_period_seconds)
    if spec.HasField("active_deadline_seconds") and spec.active_deadline_seconds <= 0:
        invalid(errs, join(path, "activeDeadlineSeconds"), spec.active_deadline_seconds,
                "must be greater than 0")
    for field, json_name, rule in (("node_name", "nodeName", validate_dns1123_subdomain),
                                   ("service_account_name", "serviceAccountName", validate_dns1123_subdomain),
                                   ("scheduler_name", "schedulerName", validate_dns1123_subdomain),
                                   ("hostname", "hostname", validate_dns1123_label),
                                   ("subdomain", "subdomain", validate_dns1123_label)):
        value = getattr(spec, field)
        if value:
            check(errs, join(path, json_name), value, rule(value))
    validate_labels(spec.node_selector, join(path, "nodeSelector"), errs)
    _validate_tolerations(spec.tolerations, join(path, "tolerations"), errs)
    if spec.HasField("affinity"):
        _validate_affinity(spec.affinity, join(path, "affinity"), errs)
    validate_topology_spread(spec.topology_spread_constraints, join(path, "topologySpreadConstraints"), errs)
    for i, alias in enumerate(spec.host_aliases):
        apath = f"{path}.hostAliases[{i}]"
        check(errs, join(apath, "ip"), alias.ip, validate_ip(alias.ip))
        if not alias.hostnames:
            required(errs, join(apath, "hostnames"))
    _validate_scheduling_gates(spec.scheduling_gates, join(path, "schedulingGates"), errs)


def _validate_scheduling_gates(gates, path, errs) -> None:
    """Each gate a qualified name (a label key's syntax), none twice."""
    seen = set()
    for i, gate in enumerate(gates):
        gpath = f"{path}[{i}]"
        if not gate.name:
            required(errs, join(gpath, "name"))
        else:
            check(errs, join(gpath, "name"), gate.name, validate_label_key(gate.name))
        if gate.name in seen:
            duplicate(errs, gpath, gate.name)
        seen.add(gate.name)


def _validate_volumes(volumes, path, errs) -> set:
    """Check volumes; return the set of declared names (for volumeMounts)."""
    names = set()
    for i, v in enumerate(volumes):
        vpath = f"{path}[{i}]"
        if not v.name:
            required(errs, join(vpath, "name"))
        else:
            check(errs, join(vpath, "name"), v.name, validate_dns1123_label(v.name))
            if v.name in names:
                duplicate(errs, join(vpath, "name"), v.name)
            names.add(v.name)
        _validate_volume_source(v, vpath, errs)
    return names

_VOLUME_SOURCES = (("empty_dir", "emptyDir"), ("host_path", "hostPath"), ("config_map", "configMap"),
                   ("secret", "secret"), ("persistent_volume_claim", "persistentVolumeClaim"),
                   ("projected", "projected"), ("downward_api", "downwardAPI"))


def _validate_volume_source(v: pb.Volume, vpath, errs) -> None:
    present = [json_name for field, json_name in _VOLUME_SOURCES if v.HasField(field)]
    if not present:
        required(errs, vpath, "must specify a volume type: one of "
                 + ", ".join(j for _, j in _VOLUME_SOURCES))
        return
    if len(present) > 1:
        forbidden(errs, join(vpath, present[1]), f"may not specify more than 1 volume type "
                  f"(found {', '.join(present)})")
    if v.HasField("empty_dir"):
        enum(errs, join(vpath, "emptyDir.medium"), v.empty_dir.medium, ("Memory",), allow_empty=True)
        if v.empty_dir.size_limit:
            validate_quantity(v.empty_dir.size_limit, join(vpath, "emptyDir.sizeLimit"), errs)
    if v.HasField("host_path"):
        hp = join(vpath, "hostPath")
        if not v.host_path.path:
            required(errs, join(hp, "path"))
        elif not v.host_path.path.startswith("/"):
            invalid(errs, join(hp, "path"), v.host_path.path, "must be an absolute path")
        enum(errs, join(hp, "type"), v.host_path.type, HOST_PATH_TYPES[1:], allow_empty=True)
    if v.HasField("config_map"):
        cm = v.config_map
        if not cm.name:
            required(errs, join(vpath, "configMap.name"))
        _validate_key_to_paths(cm.items, cm, join(vpath, "configMap"), errs)
    if v.HasField("secret"):
        s = v.secret
        if not s.secret_name:
            required(errs, join(vpath, "secret.secretName"))
        _validate_key_to_paths(s.items, s, join(vpath, "secret"), errs)
    if v.HasField("persistent_volume_claim") and not v.persistent_volume_claim.claim_name:
        required(errs, join(vpath, "persistentVolumeClaim.claimName"))
    if v.HasField("downward_api"):
        _validate_downward_api(v.downward_api, join(vpath, "downwardAPI"), errs)
    if v.HasField("projected"):
        _validate_projected(v.projected, join(vpath, "projected"), errs)


def _validate_downward_api(src, path, errs, seen=None) -> None:
    if src.DESCRIPTOR.name == "DownwardAPIVolumeSource" and src.HasField("default_mode"):
        _file_mode(errs, join(path, "defaultMode"), src.default_mode)
    for i, item in enumerate(src.items):
        ipath = f"{path}.items[{i}]"
        _validate_item_path(errs, join(ipath, "path"), item.path, seen)
        if item.HasField("field_ref"):
            _validate_field_ref(item.field_ref, join(ipath, "fieldRef"), errs, VOLUME_FIELD_PATHS)
            if item.HasField("resource_field_ref"):
                invalid(errs, ipath, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously")
        elif item.HasField("resource_field_ref"):
            ref = item.resource_field_ref
            rpath = join(ipath, "resourceFieldRef")
            if not ref.container_name:
                required(errs, join(rpath, "containerName"))
            enum(errs, join(rpath, "resource"), ref.resource, ENV_RESOURCE_FIELDS)
            if ref.divisor:
                validate_quantity(ref.divisor, join(rpath, "divisor"), errs)
        else:
            required(errs, ipath, "one of fieldRef and resourceFieldRef is required")
        if item.HasField("mode"):
            _file_mode(errs, join(ipath, "mode"), item.mode)


_PROJECTIONS = (("secret", "secret"), ("config_map", "configMap"), ("downward_api", "downwardAPI"),
                ("service_account_token", "serviceAccountToken"))
MIN_TOKEN_EXPIRATION_S = 600


def _validate_projected(src, path, errs) -> None:
    """Kubernetes' validateProjectionSources: one kind per source; no two files on one path."""
    if src.HasField("default_mode"):
        _file_mode(errs, join(path, "defaultMode"), src.default_mode)
    seen: set = set()
    for i, source in enumerate(src.sources):
        spath = f"{path}.sources[{i}]"
        present = [j for f, j in _PROJECTIONS if source.HasField(f)]
        if not present:
            required(errs, spath, "must specify one of: " + ", ".join(j for _, j in _PROJECTIONS))
        elif len(present) > 1:
            forbidden(errs, spath, "may not specify more than 1 volume type per source")
        for field, json_name in (("secret", "secret"), ("config_map", "configMap")):
            if source.HasField(field):
                ref = getattr(source, field)
                if not ref.name:
                    required(errs, join(spath, f"{json_name}.name"))
                _validate_key_to_paths(ref.items, None, join(spath, json_name), errs, seen)
        if source.HasField("downward_api"):
            _validate_downward_api(source.downward_api, join(spath, "downwardAPI"), errs, seen)
        if source.HasField("service_account_token"):
            tok = source.service_account_token
            tpath = join(spath, "serviceAccountToken")
            if tok.HasField("expiration_seconds"):
                if tok.expiration_seconds < MIN_TOKEN_EXPIRATION_S:
                    invalid(errs, join(tpath, "expirationSeconds"), tok.expiration_seconds,
                            "may not specify a duration less than 10 minutes")
                elif tok.expiration_seconds > 1 << 32:
                    invalid(errs, join(tpath, "expirationSeconds"), tok.expiration_seconds,
                            "may not specify a duration larger than 2^32 seconds")
            _validate_item_path(errs, join(tpath, "path"), tok.path, seen)


def _validate_item_path(errs, path, value, seen) -> None:
    """A file's path inside a volume: required, relative, no '..'; unique within a projected volume."""
    if not value:
        required(errs, path)
        return
    validate_relative_path(errs, path, value)
    if value.startswith("..") and ".." not in value.split("/"):   # "..data" is the writer's
        invalid(errs, path, value, "must not start with '..'")
    if seen is not None:
        if value in seen:
            invalid(errs, path, value, "conflicting duplicate paths")
        seen.add(value)


def _file_mode(errs, path, mode) -> None:
    if not 0 <= mode <= 0o777:
        invalid(errs, path, mode, "must be a number between 0 and 0777 (octal), both inclusive")


def _validate_key_to_paths(items, source, path, errs, seen=None) -> None:
    if source is not None and source.HasField("default_mode"):
        in_range(errs, join(path, "defaultMode"), source.default_mode, 0, 0o777)
    for i, item in enumerate(items):
        ipath = f"{path}.items[{i}]"
        if not item.key:
            required(errs, join(ipath, "key"))
        if not item.path:
            required(errs, join(ipath, "path"))
        elif seen is not None:
            _validate_item_path(errs, join(ipath, "path"), item.path, seen)
        else:
            validate_relative_path(errs, join(ipath, "path"), item.path)
        if item.HasField("mode"):
            in_range(errs, join(ipath, "mode"), item.mode, 0, 0o777)


def _validate_containers(spec: pb.PodSpec, path, volumes: set, errs) -> None:
    names = set()
    host_ports = set()
    for group, json_name in ((spec.init_containers, "initContainers"), (spec.containers, "containers")):
        for i, c in enumerate(group):
            cpath = f"{path}.{json_name}[{i}]"
            if not c.name:
                required(errs, join(cpath, "name"))
            else:
                check(errs, join(cpath, "name"), c.name, validate_dns1123_label(c.name))
                if c.name in names:
                    duplicate(errs, join(cpath, "name"), c.name,
                              "container names must be unique across containers and initContainers")
                names.add(c.name)
            _validate_container(c, cpath, volumes, errs, init=json_name == "initContainers")
            _validate_host_ports(c, cpath, spec.host_network, host_ports, errs)


def _validate_container(c: pb.Container, path, volumes: set, errs, init: bool) -> None:
    if not c.image:
        required(errs, join(path, "image"), "every container needs an image (e.g. nginx:1.27)")
    elif c.image != c.image.strip():
        invalid(errs, join(path, "image"), c.image, "must not have leading or trailing whitespace")
    enum(errs, join(path, "imagePullPolicy"), c.image_pull_policy, PULL_POLICIES)
    _validate_ports(c.ports, join(path, "ports"), errs)
    _validate_env(c.env, join(path, "env"), errs)
    _validate_env_from(c.env_from, join(path, "envFrom"), errs)
    _validate_resources(c.resources, join(path, "resources"), errs)
    _validate_volume_mounts(c.volume_mounts, join(path, "volumeMounts"), volumes, errs)
    validate_security_context(c, path, errs)
    # restartPolicy: only an init container's, only Always (a sidecar, which alone of
    # init containers may have probes and a lifecycle): Kubernetes' rules and messages.
    sidecar = False
    if c.HasField("restart_policy"):
        if not init:
            forbidden(errs, join(path, "restartPolicy"), "may not be set for non-init containers")
        elif c.restart_policy != "Always":
            errs.append(FieldError(join(path, "restartPolicy"),
                                   f'Unsupported value: {show(c.restart_policy)}: supported values: "Always"'))
        else:
            sidecar = True
    plain_init = init and not sidecar
    for field, json_name in (("liveness_probe", "livenessProbe"), ("readiness_probe", "readinessProbe"),
                             ("startup_probe", "startupProbe")):
        if not c.HasField(field):
            continue
        if plain_init:
            forbidden(errs, join(path, json_name), "may not be set for init containers without restartPolicy=Always")
        else:
            _validate_probe(getattr(c, field), join(path, json_name), errs, json_name)
    if c.HasField("lifecycle"):
        if plain_init:
            forbidden(errs, join(path, "lifecycle"), "may not be set for init containers without restartPolicy=Always")
        for field, json_name in (("post_start", "postStart"), ("pre_stop", "preStop")):
            if c.lifecycle.HasField(field):
                _validate_handler(getattr(c.lifecycle, field), join(path, f"lifecycle.{json_name}"), errs)


def _validate_ports(ports, path, errs) -> None:
    names = set()
    for i, p in enumerate(ports):
        ppath = f"{path}[{i}]"
        if p.container_port == 0:
            required(errs, join(ppath, "containerPort"))
        else:
            in_range(errs, join(ppath, "containerPort"), p.container_port, 1, 65535)
        in_range(errs, join(ppath, "hostPort"), p.host_port, 0, 65535)
        enum(errs, join(ppath, "protocol"), p.protocol, PROTOCOLS, allow_empty=True)
        if p.host_ip:
            check(errs, join(ppath, "hostIP"), p.host_ip, validate_ip(p.host_ip))
        if p.name:
            check(errs, join(ppath, "name"), p.name, validate_port_name(p.name))
            if p.name in names:
                duplicate(errs, join(ppath, "name"), p.name, "port names must be unique within a container")
            names.add(p.name)


def _validate_host_ports(c: pb.Container, path, host_network: bool, seen: set, errs) -> None:
    """hostPorts are unique per pod (by port, protocol, hostIP); with hostNetwork they equal containerPort."""
    for i, p in enumerate(c.ports):
        if p.host_port == 0:
            continue
        hpath = f"{path}.ports[{i}].hostPort"
        if host_network and p.host_port != p.container_port:
            invalid(errs, hpath, p.host_port, "must match `containerPort` when `hostNetwork` is true")
        key = (p.host_port, p.protocol or "TCP", p.host_ip)
        if key in seen:
            duplicate(errs, hpath, p.host_port, "host ports must be unique within a pod")
        seen.add(key)


def _validate_env(env, path, errs) -> None:
    for i, e in enumerate(env):
        epath = f"{path}[{i}]"
        if not e.name:
            required(errs, join(epath, "name"))
        else:
            check(errs, join(epath, "name"), e.name, validate_env_name(e.name))
        if e.HasField("value_from"):
            if e.value:
                invalid(errs, join(epath, "valueFrom"), "", "may not be specified when `value` is not empty")
            _validate_env_source(e.value_from, join(epath, "valueFrom"), errs)

_ENV_SOURCES = (("config_map_key_ref", "configMapKeyRef"), ("secret_key_ref", "secretKeyRef"),
                ("field_ref", "fieldRef"), ("resource_field_ref", "resourceFieldRef"))


def _validate_env_source(src: pb.EnvVarSource, path, errs) -> None:
    present = [json_name for field, json_name in _ENV_SOURCES if src.HasField(field)]
    if not present:
        required(errs, path, "must specify one of: " + ", ".join(j for _, j in _ENV_SOURCES))
        return
    if len(present) > 1:
        invalid(errs, path, ", ".join(present), "may not have more than one field specified at a time")
    for field, json_name in (("config_map_key_ref", "configMapKeyRef"), ("secret_key_ref", "secretKeyRef")):
        if src.HasField(field):
            ref = getattr(src, field)
            rpath = join(path, json_name)
            if not ref.name:
                required(errs, join(rpath, "name"))
            if not ref.key:
                required(errs, join(rpath, "key"))
            else:
                check(errs, join(rpath, "key"), ref.key, validate_config_key(ref.key))
    if src.HasField("field_ref"):
        _validate_field_ref(src.field_ref, join(path, "fieldRef"), errs)
    if src.HasField("resource_field_ref"):
        ref = src.resource_field_ref
        rpath = join(path, "resourceFieldRef")
        enum(errs, join(rpath, "resource"), ref.resource, ENV_RESOURCE_FIELDS)
        if ref.divisor:
            validate_quantity(ref.divisor, join(rpath, "divisor"), errs)


def _validate_field_ref(ref: pb.ObjectFieldSelector, path, errs, supported=None) -> None:
    if ref.api_version and ref.api_version != "v1":
        enum(errs, join(path, "apiVersion"), ref.api_version, ("v1",))
    fp = ref.field_path
    if not fp:
        required(errs, join(path, "fieldPath"))
        return
    subscript = _LABEL_SUBSCRIPT.fullmatch(fp)
    if subscript:
        check(errs, join(path, "fieldPath"), fp, validate_label_key(subscript.group(2)))
    elif fp not in (supported or ENV_FIELD_PATHS):
        errs.append(FieldError(join(path, "fieldPath"), f"Unsupported value: {show(fp)}: supported values: "
                               + ", ".join(show(p) for p in (supported or ENV_FIELD_PATHS))
                               + ", \"metadata.labels['<KEY>']\", \"metadata.annotations['<KEY>']\""))


def _validate_env_from(env_from, path, errs) -> None:
    for i, src in enumerate(env_from):
        spath = f"{path}[{i}]"
        present = [j for f, j in (("config_map_ref", "configMapRef"), ("secret_ref", "secretRef"))
                   if src.HasField(f)]
        if len(present) != 1:
            invalid(errs, spath, ", ".join(present) or "none",
                    "must specify exactly one of: configMapRef or secretRef")
        for json_name in present:
            ref = src.config_map_ref if json_name == "configMapRef" else src.secret_ref
            if not ref.name:
                required(errs, join(spath, f"{json_name}.name"))
        if src.prefix:
            check(errs, join(spath, "prefix"), src.prefix, validate_env_name(src.prefix))


def _validate_resources(res: pb.ResourceRequirements, path, errs) -> None:
    parsed = {}
    for which in ("limits", "requests"):
        values = getattr(res, which)
        parsed[which] = {}
        for name, value in sorted(values.items()):
            rpath = f"{path}.{which}[{name}]"
            if name not in STANDARD_RESOURCES:
                if "/" not in name or validate_label_key(name):
                    invalid(errs, rpath, name, "must be a standard resource (cpu, memory, ephemeral-storage) "
                            "or a fully-qualified name containing '/' (e.g. example.com/gpu)")
                    continue
            q = validate_quantity(value, rpath, errs)
            if q is not None:
                parsed[which][name] = q
    for name, request in sorted(parsed["requests"].items()):
        limit = parsed["limits"].get(name)
        if limit is not None and request > limit:
            invalid(errs, f"{path}.requests[{name}]", res.requests[name],
                    f"must be less than or equal to {name} limit of {res.limits[name]}")


def _validate_volume_mounts(mounts, path, volumes: set, errs) -> None:
    seen = set()
    for i, m in enumerate(mounts):
        mpath = f"{path}[{i}]"
        if not m.name:
            required(errs, join(mpath, "name"))
        elif m.name not in volumes:
            errs.append(FieldError(join(mpath, "name"), f"Not found: {show(m.name)}: "
                                   "no volume of that name in the pod's `volumes`"))
        if not m.mount_path:
            required(errs, join(mpath, "mountPath"))
        elif not m.mount_path.startswith("/"):
            invalid(errs, join(mpath, "mountPath"), m.mount_path, "must be an absolute path")
        elif m.mount_path in seen:
            invalid(errs, join(mpath, "mountPath"), m.mount_path, "must be unique")
        seen.add(m.mount_path)
        if m.sub_path:
            validate_relative_path(errs, join(mpath, "subPath"), m.sub_path)


def _validate_handler(h, path, errs, probe: bool = False) -> None:
    """A probe or lifecycle handler: exactly one of exec, httpGet, tcpSocket (or grpc, for
    a probe), each complete."""
    kinds = (("exec", "exec"), ("http_get", "httpGet"), ("tcp_socket", "tcpSocket"))
    if probe:
        kinds += (("grpc", "grpc"),)
    present = [j for f, j in kinds if h.HasField(f)]
    if not present:
        required(errs, path, "must specify a handler type: one of exec, httpGet, tcpSocket or grpc" if probe
                 else "must specify a handler type: one of exec, httpGet or tcpSocket")
        return
    if len(present) > 1:
        forbidden(errs, join(path, present[1]), "may not specify more than 1 handler type "
                  f"(found {', '.join(present)})")
    if h.HasField("exec") and not h.exec.command:
        required(errs, join(path, "exec.command"))
    if h.HasField("http_get"):
        validate_port_ref(h.http_get.port, join(path, "httpGet.port"), errs)
        enum(errs, join(path, "httpGet.scheme"), h.http_get.scheme, ("HTTP", "HTTPS"), allow_empty=True)
        for i, header in enumerate(h.http_get.http_headers):
            if not header.name:
                required(errs, f"{path}.httpGet.httpHeaders[{i}].name")
    if h.HasField("tcp_socket"):
        validate_port_ref(h.tcp_socket.port, join(path, "tcpSocket.port"), errs)
    if probe and h.HasField("grpc"):
        in_range(errs, join(path, "grpc.port"), h.grpc.port, 1, 65535)


def _validate_probe(p: pb.Probe, path, errs, which: str) -> None:
    _validate_handler(p, path, errs, probe=True)
    for field, json_name in (("initial_delay_seconds", "initialDelaySeconds"),
                             ("timeout_seconds", "timeoutSeconds"), ("period_seconds", "periodSeconds"),
                             ("success_threshold", "successThreshold"),
                             ("failure_threshold", "failureThreshold")):
        non_negative(errs, join(path, json_name), getattr(p, field))
    if which in ("livenessProbe", "startupProbe") and p.success_threshold not in (0, 1):
        invalid(errs, join(path, "successThreshold"), p.success_threshold,
                f"must be 1 for a {which}")
    if p.HasField("termination_grace_period_seconds"):
        if which == "readinessProbe":
            forbidden(errs, join(path, "terminationGracePeriodSeconds"), "may not be set for readiness probes")
        elif p.termination_grace_period_seconds <= 0:
            invalid(errs, join(path, "terminationGracePeriodSeconds"), p.termination_grace_period_seconds,
                    "must be greater than 0")


def _validate_tolerations(tolerations, path, errs) -> None:
    for i, t in enumerate(tolerations):
        tpath = f"{path}[{i}]"
        if t.key:
            check(errs, join(tpath, "key"), t.key, validate_label_key(t.key))
        enum(errs, join(tpath, "operator"), t.operator, TOLERATION_OPERATORS, allow_empty=True)
        operator = t.operator or "Equal"
        if not t.key and operator != "Exists":
            invalid(errs, join(tpath, "operator"), t.operator,
                    "operator must be Exists when `key` is empty, which means \"match all values and all keys\"")
        if operator == "Exists" and t.value:
            invalid(errs, join(tpath, "value"), t.value, "value must be empty when `operator` is 'Exists'")
        if operator == "Equal" and t.value:
            check(errs, join(tpath, "value"), t.value, validate_label_value(t.value))
        enum(errs, join(tpath, "effect"), t.effect, TAINT_EFFECTS, allow_empty=True)
        if t.HasField("toleration_seconds") and t.effect != "NoExecute":
            invalid(errs, join(tpath, "effect"), t.effect,
                    "effect must be 'NoExecute' when `tolerationSeconds` is set")


def _validate_affinity(a: pb.Affinity, path, errs) -> None:
    if a.HasField("node_affinity"):
        na = a.node_affinity
        napath = join(path, "nodeAffinity")
        req_name = "requiredDuringSchedulingIgnoredDuringExecution"
        pref_name = "preferredDuringSchedulingIgnoredDuringExecution"
        if na.HasField("required_during_scheduling_ignored_during_execution"):
            terms = na.required_during_scheduling_ignored_during_execution.node_selector_terms
            tpath = f"{napath}.{req_name}.nodeSelectorTerms"
            if not terms:
                required(errs, tpath, "must have at least one node selector term")
            for i, term in enumerate(terms):
                _validate_node_selector_term(term, f"{tpath}[{i}]", errs)
        for i, pref in enumerate(na.preferred_during_scheduling_ignored_during_execution):
            ppath = f"{napath}.{pref_name}[{i}]"
            in_range(errs, join(ppath, "weight"), pref.weight, 1, 100)
            _validate_node_selector_term(pref.preference, join(ppath, "preference"), errs)
    for field, json_name in (("pod_affinity", "podAffinity"), ("pod_anti_affinity", "podAntiAffinity")):
        if a.HasField(field):
            validate_pod_affinity(getattr(a, field), join(path, json_name), errs)


def _validate_node_selector_term(term: pb.NodeSelectorTerm, path, errs) -> None:
    for i, req in enumerate(term.match_expressions):
        _validate_node_selector_requirement(req, f"{path}.matchExpressions[{i}]", errs)
    for i, req in enumerate(term.match_fields):
        rpath = f"{path}.matchFields[{i}]"
        if req.key != "metadata.name":
            errs.append(FieldError(join(rpath, "key"), f"Unsupported value: {show(req.key)}: "
                                   "supported values: \"metadata.name\""))
        enum(errs, join(rpath, "operator"), req.operator, ("In", "NotIn"))
        if len(req.values) != 1:
            required(errs, join(rpath, "values"), "must have exactly one value (a node name)")


def _validate_node_selector_requirement(req: pb.NodeSelectorRequirement, path, errs) -> None:
    if not req.key:
        required(errs, join(path, "key"))
    else:
        check(errs, join(path, "key"), req.key, validate_label_key(req.key))
    enum(errs, join(path, "operator"), req.operator, NODE_SELECTOR_OPERATORS)
    vpath = join(path, "values")
    if req.operator in ("In", "NotIn") and not req.values:
        required(errs, vpath, f"must be specified when `operator` is '{req.operator}'")
    elif req.operator in ("Exists", "DoesNotExist") and req.values:
        forbidden(errs, vpath, f"may not be specified when `operator` is '{req.operator}'")
    elif req.operator in ("Gt", "Lt"):
        if len(req.values) != 1:
            required(errs, vpath, f"must be specified as a single integer when `operator` is '{req.operator}'")
        elif not re.fullmatch(r"-?[0-9]+", req.values[0]):
            invalid(errs, f"{vpath}[0]", req.values[0], "must be an integer")
