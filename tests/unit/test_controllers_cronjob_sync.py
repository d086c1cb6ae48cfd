"""The CronJob controller's sync against a fake API: the Job name as the lock (a stale cache or a
new leader never starts a run twice), the fresh read before UnexpectedJob, live checks before
MissingJob, Replace's delete-then-create, and status writes only on change."""

import datetime

from controlplane.controllers.cronjob import CronJobController
from skiff import client as clientmod
from skiff.api import objects_pb2 as pb

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 1, 10, 0, 5, 0, 200000, tzinfo=UTC)   # just after 00:05
RUN = f"cj-{int(NOW.timestamp()) // 60}"


class FakeInformer:
    def __init__(self, objs=()):
        self.objs = list(objs)

    def add_handler(self, *handlers):
        pass

    def keys(self):
        return [f"{o.metadata.namespace}/{o.metadata.name}" for o in self.objs]

    def get(self, key):
        return next((o for o in self.objs if f"{o.metadata.namespace}/{o.metadata.name}" == key), None)

    def list(self, namespace=""):
        return [o for o in self.objs if not namespace or o.metadata.namespace == namespace]


class FakeApi:
    """Jobs and CronJobs by name; creates of an existing name fail as the store's do."""

    def __init__(self, cronjobs=(), jobs=()):
        self.objects = {("cronjobs", c.metadata.name): c for c in cronjobs}
        self.objects.update({("jobs", j.metadata.name): j for j in jobs})
        self.creates, self.deletes, self.status_writes = [], [], []

    def get(self, kind, name, namespace="default"):
        try:
            return self.objects[(kind, name)]
        except KeyError:
            raise clientmod.NotFound(f'{kind} "{name}" not found') from None

    def create(self, obj):
        key = ("jobs", obj.metadata.name)
        if key in self.objects:
            raise clientmod.AlreadyExists(f'jobs "{obj.metadata.name}" already exists')
        created = pb.Job()
        created.CopyFrom(obj)
        created.metadata.uid = f"uid-{obj.metadata.name}"
        created.metadata.resource_version = "7"
        self.objects[key] = created
        self.creates.append(obj.metadata.name)
        return created

    def delete(self, kind, name, namespace="default", uid=""):
        self.objects.pop((kind, name), None)
        self.deletes.append(name)

    def update_status(self, obj):
        self.status_writes.append(obj)
        self.objects[("cronjobs", obj.metadata.name)] = obj
        return obj


class Recorder:
    def __init__(self):
        self.events = []

    def event(self, obj, etype, reason, message):
        self.events.append((reason, message))


def cronjob(policy="Allow", last="2026-01-10T00:04:00Z", active=()):
    cj = pb.CronJob(metadata=pb.ObjectMeta(name="cj", namespace="ns", uid="cj-uid",
                                           creation_timestamp="2026-01-10T00:00:30Z"))
    cj.spec.schedule = "*/1 * * * *"
    cj.spec.concurrency_policy = policy
    cj.spec.successful_jobs_history_limit = 3
    cj.spec.failed_jobs_history_limit = 1
    cj.spec.time_zone = "UTC"
    cj.spec.job_template.spec.template.spec.containers.add(name="run", image="busybox")
    cj.status.last_schedule_time = last
    for name in active:
        cj.status.active.add(kind="Job", name=name, namespace="ns", uid=f"uid-{name}")
    return cj


def job(name, owner="cj-uid"):
    j = pb.Job(metadata=pb.ObjectMeta(name=name, namespace="ns", uid=f"uid-{name}"))
    j.metadata.owner_references.add(kind="CronJob", name="cj", uid=owner, controller=True)
    return j


def controller(cached_cj, cached_jobs, api):
    rec = Recorder()
    ctl = CronJobController(api, FakeInformer([cached_cj]), FakeInformer(cached_jobs), rec, clock=lambda: NOW)
    return ctl, rec


def test_starts_the_run_and_records_it():
    cj = cronjob()
    api = FakeApi([cj])
    ctl, rec = controller(cj, [], api)
    requeue_s = ctl.sync("ns/cj")
    assert api.creates == [RUN]
    (written,) = api.status_writes
    assert [(r.name, r.uid, r.resource_version) for r in written.status.active] == [(RUN, f"uid-{RUN}", "7")]
    assert written.status.last_schedule_time == "2026-01-10T00:05:00Z"
    assert rec.events == [("SuccessfulCreate", f"Created job {RUN}")]
    assert 59.8 < requeue_s < 60.0


def test_a_replayed_sync_on_a_stale_cache_records_the_existing_job_and_creates_nothing():
    """The previous leader created the run's Job and died before writing the status;
    this leader's caches show neither. AlreadyExists on our own Job means started."""
    cj = cronjob()
    existing = job(RUN)
    api = FakeApi([cj], [existing])
    ctl, rec = controller(cj, [], api)
    ctl.sync("ns/cj")
    assert api.creates == []
    (written,) = api.status_writes
    assert [r.name for r in written.status.active] == [RUN]
    assert not [r for r, _ in rec.events if r == "SuccessfulCreate"]


def test_someone_elses_job_of_that_name_is_not_ours_to_record():
    cj = cronjob()
    api = FakeApi([cj], [job(RUN, owner="another-uid")])
    ctl, _ = controller(cj, [], api)
    ctl.sync("ns/cj")
    assert api.creates == [] and api.status_writes == []


def test_the_job_in_the_cache_but_not_in_the_cached_status_is_checked_against_a_fresh_read():
    stale = cronjob(last="2026-01-10T00:04:00Z")
    fresh = cronjob(last="2026-01-10T00:05:00Z", active=(RUN,))
    api = FakeApi([fresh], [job(RUN)])
    ctl, rec = controller(stale, [job(RUN)], api)
    ctl.sync("ns/cj")
    assert rec.events == [] and api.creates == [] and api.status_writes == []


def test_unexpected_job_after_the_fresh_read_is_reported():
    cj = cronjob(last="2026-01-10T00:05:00Z")
    api = FakeApi([cj], [job("cj-manual")])
    ctl, rec = controller(cj, [job("cj-manual")], api)
    ctl.sync("ns/cj")
    assert rec.events == [("UnexpectedJob", "Saw a job that the controller did not create or forgot: cj-manual")]


def test_active_jobs_missing_from_the_cache_are_read_live_before_being_dropped():
    cj = cronjob(last="2026-01-10T00:05:00Z", active=("cj-gone", "cj-lagging"))
    api = FakeApi([cj], [job("cj-lagging")])
    ctl, rec = controller(cj, [], api)
    ctl.sync("ns/cj")
    (written,) = api.status_writes
    assert [r.name for r in written.status.active] == ["cj-lagging"]
    assert rec.events == [("MissingJob", "Active job went missing: cj-gone")]


def test_replace_deletes_the_active_job_then_starts_the_run():
    cj = cronjob(policy="Replace", active=("cj-old",))
    api = FakeApi([cj], [job("cj-old")])
    ctl, rec = controller(cj, [job("cj-old")], api)
    ctl.sync("ns/cj")
    assert api.deletes == ["cj-old"] and api.creates == [RUN]
    assert [r.name for r in api.status_writes[-1].status.active] == [RUN]
    assert [r for r, _ in rec.events] == ["SuccessfulDelete", "SuccessfulCreate"]


def test_nothing_to_do_writes_nothing():
    cj = cronjob(last="2026-01-10T00:05:00Z", active=(RUN,))
    api = FakeApi([cj], [job(RUN)])
    ctl, rec = controller(cj, [job(RUN)], api)
    assert 59.8 < ctl.sync("ns/cj") < 60.0
    assert api.creates == [] and api.status_writes == [] and rec.events == []
