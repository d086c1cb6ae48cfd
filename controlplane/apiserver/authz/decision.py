"""An authorizer's answer: allow, deny, or no opinion (the next authorizer decides).

Kubernetes' authorizer.Decision: the union authorizer asks each in turn; the first
allow or deny wins, and a request no one allows is refused.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    denied: bool = False
    reason: str = ""

    def because(self, reason: str) -> "Decision":
        return Decision(self.allowed, self.denied, reason)

    @property
    def decided(self) -> bool:
        return self.allowed or self.denied


ALLOW = Decision(True)
DENY = Decision(False, True)
NO_OPINION = Decision(False)
