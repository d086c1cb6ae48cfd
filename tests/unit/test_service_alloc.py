"""Service allocation inside the replicated apply: ClusterIP, NodePorts, LoadBalancer ingress."""

import pytest

from controlplane import config as cfgmod
from controlplane.apiserver import admission
from controlplane.store.commands import Create, Delete, Update
from controlplane.store.state import StoreState
from skiff.api import kinds
from skiff.api import objects_pb2 as pb
from tests.helpers import write_replica_config
from tests.unit.statehelp import NOW, env, result_obj

ALLOC = {"cidr": "10.96.0.0/29", "nodePorts": (30000, 30002), "lbPool": ("10.200.0.200", "10.200.0.201")}


def svc(name, typ="ClusterIP", cluster_ip="", node_ports=(), ports=(80,), lb_ip="", rv=""):
    s = pb.Service(api_version="v1", kind="Service",
                   metadata=pb.ObjectMeta(name=name, namespace="default", resource_version=rv))
    s.spec.type = typ
    s.spec.cluster_ip = cluster_ip
    s.spec.load_balancer_ip = lb_ip
    for i, port in enumerate(ports):
        p = s.spec.ports.add(name=f"p{i}", port=port, protocol="TCP")
        p.target_port.int_val = port
        if i < len(node_ports):
            p.node_port = node_ports[i]
    return s


@pytest.fixture
def st():
    s = StoreState(event_log_size=100)
    ns = pb.Namespace(api_version="v1", kind="Namespace", metadata=pb.ObjectMeta(name="default"))
    assert s.apply(Create("r-ns", env(ns), NOW, "uid-ns"))[0] == "ok"
    return s


class Writer:
    def __init__(self, st):
        self.st, self.n = st, 0

    def create(self, obj, alloc=ALLOC):
        self.n += 1
        return self.st.apply(Create(f"r{self.n}", env(obj), NOW, f"u{self.n}", alloc))

    def update(self, obj, alloc=ALLOC, sub=""):
        self.n += 1
        return self.st.apply(Update(f"r{self.n}", env(obj), sub, obj.metadata.resource_version, alloc))

    def delete(self, name):
        self.n += 1
        return self.st.apply(Delete(f"r{self.n}", ("Service", "default", name)))


@pytest.fixture
def w(st):
    return Writer(st)


def test_cluster_ips_lowest_free_explicit_taken_headless_and_freed(w):
    # The first host address (.1) is the API Service's: never handed out automatically.
    a = result_obj(w.create(svc("a")))
    assert a.spec.cluster_ip == "10.96.0.2" and list(a.spec.cluster_ips) == ["10.96.0.2"]
    b = result_obj(w.create(svc("b", cluster_ip="10.96.0.4")))
    assert b.spec.cluster_ip == "10.96.0.4"
    assert result_obj(w.create(svc("c"))).spec.cluster_ip == "10.96.0.3"
    assert result_obj(w.create(svc("d"))).spec.cluster_ip == "10.96.0.5"
    taken = w.create(svc("e", cluster_ip="10.96.0.4"))
    assert taken[:2] == ("error", "invalid") and "spec.clusterIP" in taken[2] and "already allocated" in taken[2]
    outside = w.create(svc("e", cluster_ip="10.97.0.3"))
    assert outside[0] == "error" and "spec.clusterIP" in outside[2] and "10.96.0.0/29" in outside[2]
    headless = result_obj(w.create(svc("h", cluster_ip="None")))
    assert headless.spec.cluster_ip == "None" and list(headless.spec.cluster_ips) == ["None"]
    assert result_obj(w.create(svc("f"))).spec.cluster_ip == "10.96.0.6"
    full = w.create(svc("i"))      # /29: .2-.6 usable automatically
    assert full[0] == "error" and "is full" in full[2]
    api = result_obj(w.create(svc("kubernetes", cluster_ip="10.96.0.1")))   # asked for by name
    assert api.spec.cluster_ip == "10.96.0.1"
    assert w.delete("c")[0] == "ok"
    assert result_obj(w.create(svc("i"))).spec.cluster_ip == "10.96.0.3"


def test_a_service_made_before_the_api_service_leaves_it_the_first_address(w):
    """The race CI caught: users' Services created before the leader's bootstrap ran."""
    assert result_obj(w.create(svc("early"))).spec.cluster_ip == "10.96.0.2"
    assert result_obj(w.create(svc("kubernetes", cluster_ip="10.96.0.1"))).spec.cluster_ip == "10.96.0.1"


def test_update_keeps_cluster_ip_and_node_ports(w, st):
    a = result_obj(w.create(svc("a", typ="NodePort", ports=(80, 81))))
    assert [p.node_port for p in a.spec.ports] == [30000, 30001]
    # The API server's admission carries assigned values over when a manifest omits them.
    new = svc("a", typ="NodePort", ports=(80, 81), rv=a.metadata.resource_version)
    admission.carry_over_assigned(kinds.lookup("Service"), new, a)
    b = result_obj(w.update(new))
    assert b.spec.cluster_ip == a.spec.cluster_ip
    assert [p.node_port for p in b.spec.ports] == [30000, 30001]
    # Switching to ClusterIP drops the node ports (and frees them).
    new = svc("a", ports=(80, 81), rv=b.metadata.resource_version)
    admission.carry_over_assigned(kinds.lookup("Service"), new, b)
    c = result_obj(w.update(new))
    assert [p.node_port for p in c.spec.ports] == [0, 0] and c.spec.cluster_ip == a.spec.cluster_ip
    assert [p.node_port for p in result_obj(w.create(svc("b", typ="NodePort"))).spec.ports] == [30000]


@pytest.mark.parametrize("old_type, old_policy, new_type, new_ips, new_policy, kept", [
    ("LoadBalancer", "Local", "ClusterIP", (), "Local", ""),          # type changed, policy left behind
    ("NodePort", "Cluster", "ClusterIP", (), "Cluster", ""),
    ("LoadBalancer", "Local", "NodePort", (), "Local", "Local"),      # still external: kept
    ("LoadBalancer", "Local", "ClusterIP", ("192.0.2.9",), "Local", "Local"),  # externalIPs: external
    ("LoadBalancer", "Local", "ClusterIP", (), "Cluster", "Cluster"),  # changed by the user: theirs
    ("ClusterIP", "", "ClusterIP", (), "Local", "Local"),              # never external: validated as given
])
def test_external_traffic_policy_dropped_with_the_external_type(old_type, old_policy, new_type, new_ips,
                                                                  new_policy, kept):
    old, new = svc("a", typ=old_type), svc("a", typ=new_type)
    old.spec.external_traffic_policy, new.spec.external_traffic_policy = old_policy, new_policy
    new.spec.external_ips.extend(new_ips)
    admission.carry_over_assigned(kinds.lookup("Service"), new, old)
    assert new.spec.external_traffic_policy == kept


def test_load_balancer_local_turned_cluster_ip_is_accepted(w):
    lb = svc("a", typ="LoadBalancer")
    lb.spec.external_traffic_policy = "Local"
    a = result_obj(w.create(lb))
    back = svc("a", rv=a.metadata.resource_version)
    back.spec.external_traffic_policy = "Local"     # the user's manifest, only the type edited
    admitted = svc("a", rv=a.metadata.resource_version)
    admitted.CopyFrom(back)
    admission.admit(kinds.lookup("Service"), admitted, old=a, creating=False)   # was refused
    assert admitted.spec.external_traffic_policy == ""
    # The replicated apply drops it too, against the stored object (a proposer's copy may be stale).
    b = result_obj(w.update(back))
    assert b.spec.type == "ClusterIP" and b.spec.external_traffic_policy == ""


def test_node_ports_explicit_collision_range_and_exhaustion(w):
    a = result_obj(w.create(svc("a", typ="NodePort", node_ports=(30001,))))
    assert a.spec.ports[0].node_port == 30001
    clash = w.create(svc("b", typ="NodePort", ports=(80, 81), node_ports=(30002, 30001)))
    assert clash[0] == "error" and "spec.ports[1].nodePort" in clash[2] and "already allocated" in clash[2]
    out = w.create(svc("b", typ="NodePort", node_ports=(31000,)))
    assert out[0] == "error" and "spec.ports[0].nodePort" in out[2] and "30000-30002" in out[2]
    b = result_obj(w.create(svc("b", typ="NodePort", ports=(80, 81))))
    assert [p.node_port for p in b.spec.ports] == [30000, 30002]
    full = w.create(svc("c", typ="NodePort"))
    assert full[0] == "error" and "is full" in full[2]
    assert w.delete("a")[0] == "ok"
    assert result_obj(w.create(svc("c", typ="NodePort"))).spec.ports[0].node_port == 30001


def test_load_balancer_ingress_from_pool_kept_and_freed(w):
    a = result_obj(w.create(svc("a", typ="LoadBalancer")))
    assert [i.ip for i in a.status.load_balancer.ingress] == ["10.200.0.200"]
    assert a.spec.ports[0].node_port == 30000
    wanted_taken = w.create(svc("b", typ="LoadBalancer", lb_ip="10.200.0.200"))
    assert wanted_taken[0] == "error" and "spec.loadBalancerIP" in wanted_taken[2]
    outside = w.create(svc("b", typ="LoadBalancer", lb_ip="10.200.0.9"))
    assert outside[0] == "error" and "spec.loadBalancerIP" in outside[2]
    b = result_obj(w.create(svc("b", typ="LoadBalancer")))
    assert [i.ip for i in b.status.load_balancer.ingress] == ["10.200.0.201"]
    pending = result_obj(w.create(svc("c", typ="LoadBalancer")))
    assert list(pending.status.load_balancer.ingress) == []
    # A status write cannot take the ingress away; a spec update keeps it.
    a.status.ClearField("load_balancer")
    kept = result_obj(w.update(a, sub="status"))
    assert [i.ip for i in kept.status.load_balancer.ingress] == ["10.200.0.200"]
    kept.spec.session_affinity = "ClientIP"
    kept2 = result_obj(w.update(kept))
    assert [i.ip for i in kept2.status.load_balancer.ingress] == ["10.200.0.200"]
    # Type change away from LoadBalancer frees it.
    kept2.spec.type = "NodePort"
    assert list(result_obj(w.update(kept2)).status.load_balancer.ingress) == []
    assert w.delete("c")[0] == "ok"     # frees its node port (the test range has 3)
    assert [i.ip for i in result_obj(w.create(svc("d", typ="LoadBalancer"))).status.load_balancer.ingress] \
        == ["10.200.0.200"]


def test_refused_write_changes_nothing_and_replicas_agree(st, w):
    before = st.rv
    assert w.create(svc("a", cluster_ip="10.99.0.1"))[0] == "error"
    assert st.rv == before
    other = StoreState(event_log_size=100)
    ns = pb.Namespace(api_version="v1", kind="Namespace", metadata=pb.ObjectMeta(name="default"))
    other.apply(Create("r-ns", env(ns), NOW, "uid-ns"))
    w2 = Writer(other)
    w2.n = w.n
    for name in "xyz":
        r1, r2 = w.create(svc(name, typ="LoadBalancer")), w2.create(svc(name, typ="LoadBalancer"))
        assert r1[1:] == r2[1:] or (r1[0] == r2[0] == "error")


def test_commands_without_settings_use_kubernetes_defaults(w):
    a = result_obj(w.create(svc("a", typ="NodePort"), alloc=None))
    assert a.spec.cluster_ip == "10.96.0.2" and a.spec.ports[0].node_port == 30000


def test_services_config_section(tmp_path):
    path, pw = write_replica_config(tmp_path)
    cfg = cfgmod.load(path)
    assert cfg.services == cfgmod.ServicesConfig()
    assert cfg.services.alloc_settings() == {"cidr": "10.96.0.0/12", "nodePorts": (30000, 32767), "lbPool": ()}
    path, _ = write_replica_config(tmp_path, "services:\n  serviceCIDR: 10.100.0.0/16\n  nodePortRange: 31000-31010\n"
                                   "  loadBalancerPool: 10.200.0.200-10.200.0.220\n")
    cfg = cfgmod.load(path)
    assert cfg.services.alloc_settings() == {"cidr": "10.100.0.0/16", "nodePorts": (31000, 31010),
                                             "lbPool": ("10.200.0.200", "10.200.0.220")}
    (tmp_path / "again.yaml").write_text(cfgmod.dump(cfg, pw))
    assert cfgmod.load(str(tmp_path / "again.yaml")).services == cfg.services
    for bad, msg in (("serviceCIDR: 10.96.0.1/12", "serviceCIDR"), ("nodePortRange: 5-1", "nodePortRange"),
                     ("loadBalancerPool: 10.0.0.9", "loadBalancerPool"), ("bogus: 1", "unknown")):
        path, _ = write_replica_config(tmp_path, "services:\n  " + bad + "\n")
        with pytest.raises(cfgmod.ConfigError, match=msg):
            cfgmod.load(path)
