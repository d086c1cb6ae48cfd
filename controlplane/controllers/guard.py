"""A client whose writes refuse to go out once this replica is no longer the Raft leader.

Leader-only loops write through this wrapper, so every write re-checks
leadership just before it is sent: a replica that lost an election stops
acting at the next write instead of at its next supervisor poll. Reads
(get/list/watch) pass straight through. NotLeader is an ApiError (code that
handles API errors handles it) and a reconcile.Quiet: the toolkit's loops drop
the item without a log or a retry, since the supervisor stops them soon and the
new leader picks the work up.
"""

from skiff import client as clientmod
from skiff.reconcile import Quiet


class NotLeader(clientmod.ApiError, Quiet):
    pass


class LeaderGuardedClient:
    _WRITES = ("create", "update", "update_status", "apply", "delete")

    def __init__(self, client: clientmod.Client, is_leader):
        self._client = client
        self._is_leader = is_leader

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if name not in self._WRITES:
            return attr

        def guarded(*args, **kwargs):
            if not self._is_leader():
                raise NotLeader("this replica is no longer the Raft leader; not writing")
            return attr(*args, **kwargs)
        return guarded
