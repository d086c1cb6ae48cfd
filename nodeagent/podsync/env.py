"""A container's environment, command and args, resolved as Kubernetes does.

- envFrom first (configMapRef / secretRef, each key prefixed; keys that are not
  valid variable names are skipped), then env in order; a later variable
  replaces an earlier one of the same name;
- env[].value expands $(VAR) with the variables defined before it ($$ escapes a
  $; an unknown reference stays as written); valueFrom values are not expanded;
- valueFrom: configMapKeyRef / secretKeyRef (a missing object or key is an
  error unless optional, then the variable is left out), fieldRef
  (metadata.name/namespace/uid, metadata.labels['k'], metadata.annotations['k'],
  spec.nodeName, spec.serviceAccountName, status.hostIP(s), status.podIP(s)),
  resourceFieldRef (limits/requests of cpu, memory, ephemeral-storage; a limit
  that is not set is the node's allocatable);
- command and args expand $(VAR) with the final environment.

Objects are looked up through callables (namespace, name) -> object or None for
"not found", so this module stays pure; errors are EnvError with the message
kubelet would give (the container waits with CreateContainerConfigError).
"""

import math
import re

from skiff.api import quantity

_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_SUBSCRIPT = re.compile(r"metadata\.(labels|annotations)\['(.*)'\]")


class EnvError(Exception):
    reason = "CreateContainerConfigError"


def expand(text: str, mapping: dict) -> str:
    """Kubernetes' $(VAR) expansion (third_party/forked/golang/expansion)."""
    out = []
    checkpoint = 0
    i = 0
    n = len(text)
    while i < n:
        if text[i] == "$" and i + 1 < n:
            out.append(text[checkpoint:i])
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                advance = 1
            elif nxt == "(":
                close = text.find(")", i + 2)
                if close == -1:
                    out.append("$(")
                    advance = 1
                else:
                    name = text[i + 2:close]
                    out.append(mapping[name] if name in mapping else f"$({name})")
                    advance = close - i
            else:
                out.append("$" + nxt)
                advance = 1
            i += advance
            checkpoint = i + 1
        i += 1
    out.append(text[checkpoint:])
    return "".join(out)


def resolve_env(pod, container, get_configmap, get_secret, host_ip: str = "", pod_ip: str = "",
                allocatable: dict | None = None, service_vars=()) -> list:
    """[(name, value), ...] in definition order (a redefined name keeps its first place).
    service_vars (podsync.service_env) come first: env/envFrom override them and $(VAR)
    may refer to them, as in kubelet."""
    ns = pod.metadata.namespace
    env: dict = dict(service_vars)
    for i, src in enumerate(container.env_from):
        if src.HasField("config_map_ref"):
            ref = src.config_map_ref
            cm = get_configmap(ns, ref.name)
            if cm is None:
                if ref.optional:
                    continue
                raise EnvError(f'configmap "{ref.name}" not found')
            data = dict(cm.data)
        elif src.HasField("secret_ref"):
            ref = src.secret_ref
            secret = get_secret(ns, ref.name)
            if secret is None:
                if ref.optional:
                    continue
                raise EnvError(f'secret "{ref.name}" not found')
            data = {k: _text(v) for k, v in secret.data.items()}
        else:
            continue
        for key in sorted(data):
            name = src.prefix + key
            if _ENV_NAME.fullmatch(name):
                env[name] = data[key]
    for var in container.env:
        if var.HasField("value_from"):
            value = _value_from(pod, container, var, get_configmap, get_secret, host_ip, pod_ip, allocatable)
            if value is None:
                continue  # optional and missing
        else:
            value = expand(var.value, env)
        env[var.name] = value
    return list(env.items())


def command_and_args(container, env: list) -> tuple:
    """(command, args) with $(VAR) expanded from the final environment."""
    mapping = dict(env)
    return ([expand(c, mapping) for c in container.command], [expand(a, mapping) for a in container.args])


def _text(value) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _value_from(pod, container, var, get_configmap, get_secret, host_ip, pod_ip, allocatable):
    src = var.value_from
    ns = pod.metadata.namespace
    if src.HasField("config_map_key_ref"):
        ref = src.config_map_key_ref
        cm = get_configmap(ns, ref.name)
        if cm is None:
            if ref.optional:
                return None
            raise EnvError(f'configmap "{ref.name}" not found')
        if ref.key in cm.data:
            return cm.data[ref.key]
        if ref.key in cm.binary_data:
            return _text(cm.binary_data[ref.key])
        if ref.optional:
            return None
        raise EnvError(f"couldn't find key {ref.key} in ConfigMap {ns}/{ref.name}")
    if src.HasField("secret_key_ref"):
        ref = src.secret_key_ref
        secret = get_secret(ns, ref.name)
        if secret is None:
            if ref.optional:
                return None
            raise EnvError(f'secret "{ref.name}" not found')
        if ref.key in secret.data:
            return _text(secret.data[ref.key])
        if ref.optional:
            return None
        raise EnvError(f"couldn't find key {ref.key} in Secret {ns}/{ref.name}")
    if src.HasField("field_ref"):
        return field_value(pod, src.field_ref.field_path, host_ip, pod_ip)
    if src.HasField("resource_field_ref"):
        return resource_value(pod, container, src.resource_field_ref, allocatable or {})
    return ""


def field_value(pod, path: str, host_ip: str = "", pod_ip: str = "") -> str:
    meta = pod.metadata
    simple = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name,
        "status.hostIP": host_ip or pod.status.host_ip,
        "status.hostIPs": host_ip or pod.status.host_ip,
        "status.podIP": pod_ip or pod.status.pod_ip,
        "status.podIPs": pod_ip or pod.status.pod_ip,
    }
    if path in simple:
        return simple[path]
    m = _SUBSCRIPT.fullmatch(path)
    if m:
        return getattr(meta, m.group(1)).get(m.group(2), "")
    raise EnvError(f"unsupported fieldRef fieldPath {path!r}")


def resource_value(pod, container, ref, allocatable: dict) -> str:
    """limits.cpu with divisor "1" -> whole cores rounded up, like kubelet."""
    target = container
    if ref.container_name:
        target = next((c for c in list(pod.spec.containers) + list(pod.spec.init_containers)
                       if c.name == ref.container_name), None)
        if target is None:
            raise EnvError(f"resourceFieldRef: no container named {ref.container_name!r}")
    which, _, res = ref.resource.partition(".")
    values = dict(getattr(target.resources, which)) if which in ("limits", "requests") else None
    if values is None or res not in ("cpu", "memory", "ephemeral-storage"):
        raise EnvError(f"unsupported resourceFieldRef resource {ref.resource!r}")
    text = values.get(res)
    if text is None and which == "requests":
        text = dict(target.resources.limits).get(res)  # requests default to limits
    if text is None:
        text = allocatable.get(res, "0") if which == "limits" else "0"
    value = quantity.parse_quantity(text)
    divisor = quantity.parse_quantity(ref.divisor) if ref.divisor else 1
    if divisor <= 0:
        raise EnvError(f"resourceFieldRef divisor {ref.divisor!r} must be positive")
    return str(math.ceil(value / divisor))
