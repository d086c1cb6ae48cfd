"""The eviction subresource's budget check, run inside the replicated apply.

Kubernetes (pkg/registry/core/pod/storage/eviction.go) checks the pod's
PodDisruptionBudget, decrements status.disruptionsAllowed with a compare-and-swap
write of the budget, then deletes the pod. skiff does all of it in one command of
the state machine (commands.Evict): the apply is the one total order, so two
concurrent evictions against a budget that allows one cannot both pass — the second
sees the first's decrement. Pure and deterministic like the rest of the apply:
the time comes from the command, a refusal is returned, never raised.

The rules, in Kubernetes' order:
1. a pod that is Succeeded, Failed or Pending, or already being deleted, is deleted
   without looking at budgets (canIgnorePDB);
2. the budgets of the pod's namespace whose selector selects it (policy.selects);
   none: delete; more than one: refused (500 in Kubernetes, which does not support it);
3. a pod that is not Ready: AlwaysAllow deletes it; IfHealthyBudget (or unset)
   deletes it when the budget is healthy (currentHealthy >= desiredHealthy > 0);
   otherwise it is checked as a ready pod is;
4. checkAndDecrement: a budget the controller has not observed since its last spec
   change, or with disruptionsAllowed 0, refuses (429 TooManyRequests); a negative
   disruptionsAllowed or more than MAX_DISRUPTED_PODS unconfirmed evictions is
   Forbidden; else disruptionsAllowed - 1, the pod recorded in status.disruptedPods
   with the command's time (the controller stops counting it as healthy, and drops the
   entry once the pod is gone or after 2 minutes), DisruptionAllowed set False when
   it reached 0, and the pod's graceful deletion starts.
"""

from controlplane.store import binding
from skiff.api import objects_pb2 as pb
from skiff.api.kinds import policy

# Kubernetes' MaxDisruptedPodSize: evictions the controller has not confirmed yet.
MAX_DISRUPTED_PODS = 2000
_IGNORED_PHASES = ("Succeeded", "Failed", "Pending")


def _ready(pod: pb.Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def budgets_for(pod: pb.Pod, budgets) -> list:
    """The budgets (of the pod's namespace) that select the pod."""
    return [b for b in budgets if policy.selects(b, pod.metadata.labels)]


def check(pod: pb.Pod, budgets, now: str):
    """Decide an eviction of pod against its namespace's budgets.

    Returns (refusal, charged): refusal is None or (error code, message); charged is
    None (delete without touching a budget) or a new PodDisruptionBudget to store
    before the pod's deletion starts. Neither argument is modified.
    """
    if pod.status.phase in _IGNORED_PHASES or pod.metadata.deletion_timestamp:
        return None, None
    matching = budgets_for(pod, budgets)
    if not matching:
        return None, None
    if len(matching) > 1:
        return ("internal", "This pod has more than one PodDisruptionBudget, which the eviction "
                "subresource does not support."), None
    pdb = matching[0]
    st = pdb.status
    if not _ready(pod):
        if policy.unhealthy_pod_eviction_policy(pdb) == policy.ALWAYS_ALLOW:
            return None, None
        if st.current_healthy >= st.desired_healthy and st.desired_healthy > 0:
            return None, None
    return _check_and_decrement(pod.metadata.name, pdb, now)


def _check_and_decrement(pod_name: str, pdb: pb.PodDisruptionBudget, now: str):
    st = pdb.status
    name = pdb.metadata.name
    if st.observed_generation < pdb.metadata.generation:
        return ("too_many_requests", f"{policy.BUDGET_VIOLATED} The disruption budget {name} is still "
                "being processed by the server."), None
    if st.disruptions_allowed < 0:
        return ("forbidden", f'poddisruptionbudgets.policy "{name}" is forbidden: '
                "pdb disruptions allowed is negative"), None
    if len(st.disrupted_pods) > MAX_DISRUPTED_PODS:
        return ("forbidden", f'poddisruptionbudgets.policy "{name}" is forbidden: DisruptedPods map '
                "too big - too many evictions not confirmed by PDB controller"), None
    if st.disruptions_allowed == 0:
        return ("too_many_requests", policy.BUDGET_VIOLATED), None
    charged = pb.PodDisruptionBudget()
    charged.CopyFrom(pdb)
    charged.status.disruptions_allowed -= 1
    charged.status.disrupted_pods[pod_name] = now
    if charged.status.disruptions_allowed == 0:
        binding.set_condition(charged.status.conditions, policy.DISRUPTION_ALLOWED, "False", now,
                              policy.INSUFFICIENT_PODS)
    return None, charged
