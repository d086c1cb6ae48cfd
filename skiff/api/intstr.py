"""IntOrString values that are a count or a percentage of a total (maxSurge, maxUnavailable).

Pure. scaled_value() is Kubernetes' intstr.GetScaledValueFromIntOrPercent: an int is
itself; "N%" is N percent of total, rounded up or down as the caller's rule says
(a Deployment rounds maxSurge up and maxUnavailable down; a DaemonSet rounds both up).
Admission has already refused malformed values (validation.int_or_percent); here a
malformed one counts as 0 so a controller never crashes on a stored object.
"""

from skiff.api import objects_pb2 as pb


def scaled_value(v: pb.IntOrString, total: int, round_up: bool, default: str = "") -> int:
    """v resolved against total; default (an int or "N%" text) when v is unset."""
    if v.HasField("int_val"):
        return v.int_val
    text = v.str_val if v.HasField("str_val") else default
    if text.endswith("%"):
        try:
            pct = int(text[:-1])
        except ValueError:
            return 0
        return -(-total * pct // 100) if round_up else total * pct // 100
    try:
        return int(text)
    except ValueError:
        return 0
