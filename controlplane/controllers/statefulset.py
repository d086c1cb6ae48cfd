"""The StatefulSet controller: numbered pods with stable names, created, replaced and
updated in order, through the API.

sync(ns/name): read the StatefulSet and its namespace's pods from the informer caches,
plan with the pure plan_statefulset() (statefulset_plan.py has the rules), then apply in
the plan's order: adopt/release (pod updates, compare-and-swap), create pods by name,
delete pods gracefully with a uid precondition, restore identity labels, and write the
status through the status subresource when it changed.

Revision history. Kubernetes keeps every template of a set in ControllerRevision
objects; skiff has no such kind yet. The controller remembers, per set, the templates it
has seen (revision name -> template), always the current and update revisions plus at
most spec.revisionHistoryLimit others, most recent first, and gives them to the planner:
a pod below a RollingUpdate's partition that is deleted comes back with the template of
the current revision even when no pod of that revision is left. The memory lasts one
term of leadership; a new leader reads old templates back from live pods instead (see
statefulset_plan.py).

Idempotent without expectations: pods have fixed names, so a create the cache has not
shown yet fails with AlreadyExists on the next round instead of making a twin, and a
delete carries the pod's uid, so a repeated one never hits the pod that replaced it.

Events, as Kubernetes' stateful pod control writes them: SuccessfulCreate "create Pod
web-0 in StatefulSet web successful", SuccessfulDelete "delete Pod web-2 in StatefulSet
web successful", FailedCreate / FailedDelete (Warning) with the error, and
RecreatingFailedPod (Warning) before a failed pod is deleted to be made again.

The loop is woken by StatefulSet changes and by changes of the pods they own (orphans:
of every set in the namespace whose selector matches). Resync every 30 s (the Loop's
default): idle, its cost is one plan per StatefulSet over the cached pods of its namespace
and no API call, since status is written only when it changed.
"""

import logging

from controlplane.controllers.podutil import controller_ref, copy, key_of, owner_reference
from controlplane.controllers.replicaset_plan import without_owner
from controlplane.controllers.statefulset_plan import (CREATE, DELETE, RELABEL, ordinal_of, plan_statefulset,
                                                       revision_name)
from skiff import client as clientmod
from skiff.api import selectors
from skiff.reconcile import Loop

log = logging.getLogger("skiff.controllers.statefulset")

KIND = "StatefulSet"


class StatefulSetController:
    def __init__(self, client, statefulsets, pods, recorder, workers: int = 2):
        self.client = client
        self.statefulsets = statefulsets
        self.pods = pods
        self.recorder = recorder
        self.loop = Loop("statefulset", self.sync, informers=(statefulsets, pods), workers=workers,
                         list_keys=statefulsets.keys, logger=log)
        self._history: dict = {}   # set key -> {revision name: template}, oldest first
        statefulsets.add_handler(self._enqueue, lambda old, new: self._enqueue(new),
                                 lambda sts: self._history.pop(key_of(sts), None))
        pods.add_handler(self._pod_changed, lambda old, new: self._pod_changed(old, new), self._pod_changed)

    def start(self):
        self.loop.start()

    def stop(self):
        self.loop.stop()

    # ------------------------------------------------------------ handlers (enqueue only)

    def _enqueue(self, sts):
        self.loop.enqueue(key_of(sts))

    def _pod_changed(self, *pods):
        keys = set()
        for pod in pods:
            ref = controller_ref(pod.metadata)
            if ref is not None:
                if ref.kind == KIND:
                    keys.add(f"{pod.metadata.namespace}/{ref.name}")
                continue
            for sts in self.statefulsets.list(pod.metadata.namespace):
                if ordinal_of(sts.metadata.name, pod.metadata.name) is None:
                    continue
                try:
                    if selectors.from_label_selector(sts.spec.selector).matches(pod.metadata.labels):
                        keys.add(key_of(sts))
                except ValueError:
                    continue
        for key in keys:
            self.loop.enqueue(key)

    # ------------------------------------------------------------ sync

    def sync(self, key):
        sts = self.statefulsets.get(key)
        if sts is None:
            return None
        ns = sts.metadata.namespace
        pods = self.pods.list(ns)
        history = self._remember(key, sts)
        plan = plan_statefulset(sts, pods, history=history)
        by_name = {p.metadata.name: p for p in pods}
        if plan.adopt or plan.release:
            self._claim(sts, plan, by_name)
        for action in plan.actions:
            if action.verb == CREATE:
                self._create(sts, action.pod)
            elif action.verb == DELETE:
                self._delete(sts, action.pod, action.why)
            elif action.verb == RELABEL:
                self.client.update(action.pod)
                log.info("event=pod_identity_restored sts=%s pod=%s", key, action.pod.metadata.name)
        if plan.status != sts.status:
            try:
                self._write_status(sts, plan.status)
            except clientmod.NotFound:
                return None
        return plan.recheck_s

    def _write_status(self, sts, status):
        """Status through the status subresource; on a conflict (the cache is behind our own
        last write, or the user's) once more on a fresh read, as Kubernetes'
        updateStatefulSetStatus retries on conflict."""
        updated = copy(sts)
        updated.status.CopyFrom(status)
        try:
            self.client.update_status(updated)
        except clientmod.Conflict:
            fresh = self.client.get("statefulsets", sts.metadata.name, sts.metadata.namespace)
            if fresh.metadata.uid != sts.metadata.uid or fresh.status == status:
                return
            fresh.status.CopyFrom(status)
            self.client.update_status(fresh)

    def _remember(self, key, sts) -> dict:
        """Add the set's template to its history; trim to revisionHistoryLimit old ones."""
        history = self._history.setdefault(key, {})
        rev = revision_name(sts, sts.spec.template)
        history.pop(rev, None)
        history[rev] = copy(sts.spec.template)
        keep = {rev, sts.status.current_revision}
        limit = sts.spec.revision_history_limit if sts.spec.HasField("revision_history_limit") else 10
        old = [r for r in history if r not in keep]
        for r in old[:max(0, len(old) - limit)]:
            del history[r]
        return dict(history)

    def _create(self, sts, pod):
        name, set_name = pod.metadata.name, sts.metadata.name
        try:
            self.client.create(pod)
        except clientmod.AlreadyExists:
            # The cache is behind (our own create), or the old pod of that name is still
            # going away: the pod's events bring the set back here.
            log.info("event=pod_exists sts=%s pod=%s", key_of(sts), name)
            return
        except clientmod.ApiError as exc:
            self.recorder.event(sts, "Warning", "FailedCreate",
                                f"create Pod {name} in StatefulSet {set_name} failed error: {exc}")
            raise
        log.info("event=pod_created sts=%s pod=%s revision=%s", key_of(sts), name,
                 pod.metadata.labels.get("controller-revision-hash", ""))
        self.recorder.event(sts, "Normal", "SuccessfulCreate", f"create Pod {name} in StatefulSet {set_name} successful")

    def _delete(self, sts, pod, why):
        name, set_name, ns = pod.metadata.name, sts.metadata.name, sts.metadata.namespace
        if why == "failed":
            self.recorder.event(sts, "Warning", "RecreatingFailedPod",
                                f"StatefulSet {ns}/{set_name} is recreating failed Pod {name}")
        try:
            self.client.delete("pods", name, ns, uid=pod.metadata.uid)
        except (clientmod.NotFound, clientmod.Conflict):
            return   # gone already, or a newer pod of that name: not the one we meant
        except clientmod.ApiError as exc:
            self.recorder.event(sts, "Warning", "FailedDelete",
                                f"delete Pod {name} in StatefulSet {set_name} failed error: {exc}")
            raise
        log.info("event=pod_deleted sts=%s pod=%s why=%s", key_of(sts), name, why)
        self.recorder.event(sts, "Normal", "SuccessfulDelete", f"delete Pod {name} in StatefulSet {set_name} successful")

    def _claim(self, sts, plan, by_name):
        """Adopt orphans and release strays. Adoption re-reads the set first (Kubernetes'
        canAdopt check): a cache may still show a StatefulSet that is already gone."""
        ns = sts.metadata.namespace
        if plan.adopt:
            fresh = self.client.get("statefulsets", sts.metadata.name, ns)
            if fresh.metadata.uid == sts.metadata.uid:
                for name in plan.adopt:
                    adopted = copy(by_name[name])
                    adopted.metadata.owner_references.append(owner_reference(sts, KIND, "apps/v1"))
                    self.client.update(adopted)
                    log.info("event=pod_adopted sts=%s/%s pod=%s", ns, sts.metadata.name, name)
        for name in plan.release:
            try:
                self.client.update(without_owner(by_name[name], sts.metadata.uid))
            except clientmod.NotFound:
                continue
            log.info("event=pod_released sts=%s/%s pod=%s", ns, sts.metadata.name, name)
