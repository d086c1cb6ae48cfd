"""Service ipFamilyPolicy / ipFamilies on skiff's single-stack IPv4 cluster, as Kubernetes:
defaults, refusals with Kubernetes' messages, the headless and ExternalName special cases,
and what an update keeps."""

import pytest

from skiff.api import codec, defaults, kinds, validation
from skiff.api.assigned import carry_over_assigned

KIND = kinds.BY_NAME["Service"]


def svc(type_="ClusterIP", policy=None, families=None, cluster_ip="", selector=True, name="web"):
    spec = {"type": type_}
    if type_ == "ExternalName":
        spec["externalName"] = "db.example.com"
    else:
        spec["ports"] = [{"port": 80}]
    if selector:
        spec["selector"] = {"app": "web"}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    if policy is not None:
        spec["ipFamilyPolicy"] = policy
    if families is not None:
        spec["ipFamilies"] = families
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": spec}


def admitted(doc, old=None):
    """(the defaulted Service, its validation errors as strings), as the API server admits it."""
    msg = codec.decode(KIND.message, doc)
    if old is not None:
        carry_over_assigned(KIND, msg, old)
    defaults.apply_defaults(KIND, msg)
    errs = validation.validate(KIND, msg)
    if old is not None:
        errs += validation.validate_update(KIND, msg, old)
    return msg, [str(e) for e in errs]


DEFAULTS = [
    # (service, expected policy, expected families)
    (svc(), "SingleStack", ["IPv4"]),
    (svc("NodePort"), "SingleStack", ["IPv4"]),
    (svc("LoadBalancer"), "SingleStack", ["IPv4"]),
    (svc(policy="PreferDualStack"), "PreferDualStack", ["IPv4"]),
    (svc(families=["IPv4"]), "SingleStack", ["IPv4"]),
    (svc(cluster_ip="None"), "SingleStack", ["IPv4"]),                          # headless with a selector
    (svc(cluster_ip="None", selector=False), "RequireDualStack", ["IPv4", "IPv6"]),  # headless, no selector
    (svc(cluster_ip="None", selector=False, policy="SingleStack"), "SingleStack", ["IPv4"]),
    (svc(cluster_ip="None", selector=False, policy="PreferDualStack"), "PreferDualStack", ["IPv4", "IPv6"]),
    (svc("ExternalName", selector=False), None, []),
]


@pytest.mark.parametrize("doc,policy,families", DEFAULTS)
def test_defaults(doc, policy, families):
    msg, errs = admitted(doc)
    assert errs == []
    assert (msg.spec.ip_family_policy if msg.spec.HasField("ip_family_policy") else None) == policy
    assert list(msg.spec.ip_families) == families


REFUSED = [
    (svc(policy="RequireDualStack"),
     'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services'),
    (svc(families=["IPv6"]), 'spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster'),
    (svc(policy="PreferDualStack", families=["IPv4", "IPv6"]),
     'spec.ipFamilies[1]: Invalid value: "IPv6": not configured on this cluster'),
    (svc(policy="SingleStack", families=["IPv4", "IPv6"]),
     "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' "
     "when multiple IP families are specified"),
    (svc(policy="Sometimes"),
     'spec.ipFamilyPolicy: Unsupported value: "Sometimes": supported values: "SingleStack", '
     '"PreferDualStack", "RequireDualStack"'),
    (svc(families=["IPv5"]), 'spec.ipFamilies[0]: Unsupported value: "IPv5": supported values: "IPv4", "IPv6"'),
    (svc(families=["IPv4", "IPv4"], policy="PreferDualStack"), 'spec.ipFamilies[1]: Duplicate value: "IPv4"'),
    (svc("ExternalName", selector=False, policy="SingleStack"),
     "spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services"),
    (svc("ExternalName", selector=False, families=["IPv4"]),
     "spec.ipFamilies: Forbidden: may not be set for ExternalName services"),
]


@pytest.mark.parametrize("doc,error", REFUSED, ids=[r[1][:60] for r in REFUSED])
def test_refused(doc, error):
    _, errs = admitted(doc)
    assert error in errs


def test_two_families_default_to_require_dual_stack_and_are_refused():
    msg, errs = admitted(svc(families=["IPv4", "IPv6"]))
    assert msg.spec.ip_family_policy == "RequireDualStack"
    assert 'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured ' \
           'for dual-stack services' in errs


def test_headless_selectorless_may_require_dual_stack():
    """Kubernetes' special case: no address is allocated, so the cluster's families do not matter."""
    msg, errs = admitted(svc(cluster_ip="None", selector=False, policy="RequireDualStack", families=["IPv6"]))
    assert errs == [] and list(msg.spec.ip_families) == ["IPv6", "IPv4"]


def stored(doc):
    msg, errs = admitted(doc)
    assert errs == []
    msg.spec.cluster_ip = "" if doc["spec"].get("clusterIP") is None else doc["spec"]["clusterIP"]
    return msg


def test_reapplying_without_the_fields_keeps_them():
    old = stored(svc(policy="PreferDualStack"))
    msg, errs = admitted(svc(), old=old)
    assert errs == []
    assert (msg.spec.ip_family_policy, list(msg.spec.ip_families)) == ("PreferDualStack", ["IPv4"])


def test_turning_external_name_drops_the_families_it_carried():
    old = stored(svc())
    new = codec.decode(KIND.message, svc("ExternalName", selector=False))
    new.spec.ip_families.extend(old.spec.ip_families)         # a full-object update (edit, replace)
    new.spec.ip_family_policy = old.spec.ip_family_policy
    carry_over_assigned(KIND, new, old)
    defaults.apply_defaults(KIND, new)
    assert validation.validate(KIND, new) == []
    assert not new.spec.ip_families and not new.spec.HasField("ip_family_policy")


def test_external_name_turned_cluster_ip_gets_the_defaults():
    old = stored(svc("ExternalName", selector=False))
    msg, errs = admitted(svc(), old=old)
    assert errs == [] and list(msg.spec.ip_families) == ["IPv4"] and msg.spec.ip_family_policy == "SingleStack"


def test_headless_selectorless_released_to_single_stack():
    old = stored(svc(cluster_ip="None", selector=False))
    msg, errs = admitted(svc(cluster_ip="None", selector=False, policy="SingleStack"), old=old)
    assert errs == [] and list(msg.spec.ip_families) == ["IPv4"]
    msg, errs = admitted(svc(cluster_ip="None", selector=False, families=["IPv4"]), old=old)
    assert errs == [] and list(msg.spec.ip_families) == ["IPv4", "IPv6"]   # the policy still asks for two


def test_primary_family_may_not_change():
    old = stored(svc(cluster_ip="None", selector=False))
    _, errs = admitted(svc(cluster_ip="None", selector=False, families=["IPv6", "IPv4"]), old=old)
    assert 'spec.ipFamilies[0]: Invalid value: "IPv6": may not change primary ipFamily' in errs
