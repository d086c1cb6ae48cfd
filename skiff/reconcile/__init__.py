"""The reconcile toolkit every loop of skiff uses, control plane and agent alike.

- Loop (loop.py): keyed work; a work queue, workers, per-key backoff, periodic
  resync of every key, nothing before the informers it reads have synced. For
  loops with many independent keys: controllers, the scheduler, pod sync.
- BoundedFrequencyRunner (runner.py): one whole-state sync, run on request no more
  often than min_interval_s, at least every max_interval_s, retried with growing
  delays after a failure (kube-proxy's minSyncPeriod / syncPeriod pacing). For
  loops that recompute everything at once: the proxier, GC, node lifecycle, the
  pod network, bootstrap, heartbeats.
- LeaderSupervisor (leader.py): runs a set of loops exactly while a callable says
  this process leads.
- Quiet (common.py): an exception a sync may raise to say "stop quietly, someone
  else takes over" (the control plane's NotLeader is one); never logged, never
  retried.

Periods are the caller's: every module that builds a Loop, a runner or a
supervisor states in its docstring how often it runs and what a pass costs idle
(tests/unit/test_loop_periods.py checks that the statement is there).

skiff/ imports nothing from controlplane/ or nodeagent/: both import this.
"""

from skiff.reconcile.common import Quiet, wait_for_informers
from skiff.reconcile.leader import Group, LeaderSupervisor
from skiff.reconcile.loop import BACKOFF, Loop
from skiff.reconcile.runner import BoundedFrequencyRunner, Pacing

__all__ = ["BACKOFF", "BoundedFrequencyRunner", "Group", "LeaderSupervisor", "Loop", "Pacing", "Quiet",
           "wait_for_informers"]
