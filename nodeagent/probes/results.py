"""What the probes report to the pod sync (nodeagent/probes/manager.py produces it)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ProbeResults:
    """Latest results of one container's probes: True, False, or None (unknown / no probe)."""
    liveness: bool | None = None
    readiness: bool | None = None
    startup: bool | None = None
