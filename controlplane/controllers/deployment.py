"""The Deployment controller: one ReplicaSet per pod template, rolled out by the Deployment.

sync(ns/name): read the Deployment, its namespace's ReplicaSets and (for Recreate)
pods from the caches, plan one step with the pure plan_deployment(), then apply:
adopt orphan RSs, create the new RS (on a name collision with an RS that is not
ours, bump status.collisionCount so the next hash differs, as Kubernetes does),
write the RSs whose size or annotations change (compare-and-swap), delete RSs
beyond the revision history, write the Deployment's revision annotation, then its
status when it changed. The next step starts when an RS's status moves (its
informer event), when a pod of a Recreate rollout is gone, or when the progress
deadline would pass (sync returns that delay). Events: ScalingReplicaSet on the
Deployment, with Kubernetes' "Scaled up replica set X from A to B".

Period and cost: event-driven (Deployment and ReplicaSet changes), plus the keyed Loop's
resync of every Deployment every 30 s (the toolkit's default resync_s); an idle sync
reads the caches and writes nothing (no API call).
"""

import logging

from controlplane.controllers.deployment_plan import plan_deployment, same_template
from controlplane.controllers.podutil import controller_ref, copy, key_of, owner_reference
from skiff import client as clientmod
from skiff.api import selectors
from skiff.reconcile import Loop

log = logging.getLogger("skiff.controllers.deployment")


class DeploymentController:
    def __init__(self, client, deployments, replicasets, recorder, workers: int = 2, pods=None):
        self.client = client
        self.deployments = deployments
        self.replicasets = replicasets
        self.pods = pods
        self.recorder = recorder
        informers = (deployments, replicasets) + ((pods,) if pods is not None else ())
        self.loop = Loop("deployment", self.sync, informers=informers, workers=workers,
                         list_keys=deployments.keys)
        deployments.add_handler(self._enqueue, lambda old, new: self._enqueue(new), None)
        replicasets.add_handler(self._rs_changed, lambda old, new: self._rs_changed(old, new),
                                self._rs_changed)
        if pods is not None:
            pods.add_handler(None, None, self._pod_deleted)

    def start(self):
        self.loop.start()

    def stop(self):
        self.loop.stop()

    # ------------------------------------------------------------ handlers (enqueue only)

    def _enqueue(self, d):
        self.loop.enqueue(key_of(d))

    def _rs_changed(self, *rss):
        keys = set()
        for rs in rss:
            ref = controller_ref(rs.metadata)
            if ref is not None:
                if ref.kind == "Deployment":
                    keys.add(f"{rs.metadata.namespace}/{ref.name}")
                continue
            for d in self.deployments.list(rs.metadata.namespace):
                try:
                    if selectors.from_label_selector(d.spec.selector).matches(rs.metadata.labels):
                        keys.add(key_of(d))
                except ValueError:
                    continue
        for key in keys:
            self.loop.enqueue(key)

    def _pod_deleted(self, pod):
        """A Recreate rollout waits for its old pods to be gone (deletePod in Kubernetes)."""
        ref = controller_ref(pod.metadata)
        if ref is None or ref.kind != "ReplicaSet":
            return
        rs = self.replicasets.get(f"{pod.metadata.namespace}/{ref.name}")
        dref = controller_ref(rs.metadata) if rs is not None else None
        if dref is None or dref.kind != "Deployment":
            return
        d = self.deployments.get(f"{pod.metadata.namespace}/{dref.name}")
        if d is not None and d.spec.strategy.type == "Recreate":
            self._enqueue(d)

    # ------------------------------------------------------------ sync

    def sync(self, key):
        d = self.deployments.get(key)
        if d is None:
            return None
        ns = d.metadata.namespace
        rss = self.replicasets.list(ns)
        pods = self.pods.list(ns) if self.pods is not None and d.spec.strategy.type == "Recreate" else ()
        plan = plan_deployment(d, rss, pods=pods)
        by_name = {rs.metadata.name: rs for rs in rss}
        if plan.adopt:
            fresh = self.client.get("deployments", d.metadata.name, ns)
            if fresh.metadata.uid != d.metadata.uid:
                return None
            for name in plan.adopt:
                rs = copy(by_name[name])
                rs.metadata.owner_references.append(owner_reference(d, "Deployment", "apps/v1"))
                self.client.update(rs)
                log.info("event=rs_adopted deployment=%s rs=%s", key, name)
        status = plan.status
        if plan.create is not None:
            status = self._create(d, plan, status)
            if status is None:
                return None
        for rs in plan.update:
            before = by_name[rs.metadata.name].spec.replicas
            self.client.update(rs)
            if rs.spec.replicas != before:
                verb = "up" if rs.spec.replicas > before else "down"
                log.info("event=rs_scaled deployment=%s rs=%s from=%d to=%d", key, rs.metadata.name, before,
                         rs.spec.replicas)
                self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                    f"Scaled {verb} replica set {rs.metadata.name} from {before} to {rs.spec.replicas}")
        for name in plan.delete:
            try:
                self.client.delete("replicasets", name, ns, uid=by_name[name].metadata.uid)
            except (clientmod.NotFound, clientmod.Conflict):
                continue
            log.info("event=rs_deleted deployment=%s rs=%s reason=revision_history", key, name)
        current = d
        if plan.annotations is not None:
            updated = copy(d)
            updated.metadata.annotations.clear()
            updated.metadata.annotations.update(plan.annotations)
            try:
                current = self.client.update(updated)
            except clientmod.NotFound:
                return None
        if status != d.status:
            updated = copy(current)
            updated.status.CopyFrom(status)
            try:
                self.client.update_status(updated)
            except clientmod.NotFound:
                return None
        return plan.recheck_s

    def _create(self, d, plan, status):
        """Create the new RS; the status to write, or None when the next sync should retry."""
        rs = plan.create
        try:
            created = self.client.create(rs)
        except clientmod.AlreadyExists:
            existing = self.client.get("replicasets", rs.metadata.name, d.metadata.namespace)
            ref = controller_ref(existing.metadata)
            if ref is not None and ref.uid == d.metadata.uid and same_template(existing, d):
                return status  # ours: the cache had not shown it yet
            bumped = copy(d)
            bumped.status.collision_count = (d.status.collision_count + 1
                                             if d.status.HasField("collision_count") else 1)
            self.client.update_status(bumped)
            log.info("event=hash_collision deployment=%s/%s rs=%s collision_count=%d",
                     d.metadata.namespace, d.metadata.name, rs.metadata.name, bumped.status.collision_count)
            return None
        log.info("event=rs_created deployment=%s/%s rs=%s replicas=%d", d.metadata.namespace,
                 d.metadata.name, created.metadata.name, created.spec.replicas)
        self.recorder.event(d, "Normal", "ScalingReplicaSet",
                            f"Scaled up replica set {created.metadata.name} from 0 to {created.spec.replicas}")
        return status
