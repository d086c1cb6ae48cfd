"""IntOrString counts: a number, or a percentage of a total ("25%").

Kubernetes' intstr.GetScaledValueFromIntOrPercent, shared by every controller that
resolves one against a scale (a Deployment's maxSurge / maxUnavailable, a
PodDisruptionBudget's minAvailable / maxUnavailable, a DaemonSet's rolling update).
Validation of such fields is skiff/api/validation.int_or_percent.
"""

import re

from skiff.api import objects_pb2 as pb

PERCENT = re.compile(r"([0-9]+)%")


def is_percent(v: pb.IntOrString) -> bool:
    return v.HasField("str_val")


def scaled_value(v: pb.IntOrString, total: int, round_up: bool, default: str = "0") -> int:
    """v resolved against total: an int as is, "N%" as total*N/100 rounded up or down.

    An unset v is `default`. A string that is not "N%" resolves to 0 (admission refuses
    it; a controller must not crash on an object stored before a rule existed)."""
    if v.HasField("int_val"):
        return v.int_val
    text = v.str_val if v.HasField("str_val") else default
    match = PERCENT.fullmatch(text)
    if match:
        pct = int(match.group(1))
        return -(-total * pct // 100) if round_up else total * pct // 100
    try:
        return int(text)
    except ValueError:
        return 0
