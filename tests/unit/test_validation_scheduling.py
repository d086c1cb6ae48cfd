"""Validation of podAffinity/podAntiAffinity terms and topologySpreadConstraints, as Kubernetes':
each case breaks one valid Pod (or Deployment template) and checks the exact path and message."""

import copy

import pytest

from tests.unit.test_validation import BASES, errors_of, put

AA = "spec.affinity.podAntiAffinity"
REQ = "requiredDuringSchedulingIgnoredDuringExecution"
PREF = "preferredDuringSchedulingIgnoredDuringExecution"
TSC = "spec.topologySpreadConstraints"
WEB = {"matchLabels": {"app": "web"}}


def anti(term=None, weight=None):
    term = {"labelSelector": WEB, "topologyKey": "kubernetes.io/hostname", **(term or {})}
    if weight is None:
        return put("spec.affinity", {"podAntiAffinity": {REQ: [term]}})
    return put("spec.affinity", {"podAntiAffinity": {PREF: [{"weight": weight, "podAffinityTerm": term}]}})


def spread(*constraints):
    base = {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": WEB}
    return put("spec.topologySpreadConstraints", [{**base, **c} for c in constraints])


# (mutation of the valid Pod, expected path, text in the detail)
INVALID = [
    (anti({"topologyKey": ""}), f"{AA}.{REQ}[0].topologyKey", "Required value: can not be empty"),
    (anti({"topologyKey": "bad key!"}), f"{AA}.{REQ}[0].topologyKey", "Invalid value"),
    (anti(weight=0), f"{AA}.{PREF}[0].weight", "between 1 and 100"),
    (anti(weight=101), f"{AA}.{PREF}[0].weight", "between 1 and 100"),
    (anti({"labelSelector": {"matchExpressions": [{"key": "app", "operator": "Near"}]}}),
     f"{AA}.{REQ}[0].labelSelector.matchExpressions[0].operator", "Unsupported value"),
    (anti({"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In"}]}}),
     f"{AA}.{REQ}[0].namespaceSelector.matchExpressions[0].values", "Required"),
    (anti({"namespaces": ["Not_A_Namespace"]}), f"{AA}.{REQ}[0].namespaces[0]", "Invalid value"),
    (anti({"matchLabelKeys": ["app"]}), f"{AA}.{REQ}[0].matchLabelKeys[0]",
     "exists in both matchLabelKeys and labelSelector"),
    (anti({"matchLabelKeys": ["version"], "mismatchLabelKeys": ["version"]}), f"{AA}.{REQ}[0].matchLabelKeys[0]",
     "exists in both matchLabelKeys and mismatchLabelKeys"),
    (anti({"matchLabelKeys": ["bad key!"]}), f"{AA}.{REQ}[0].matchLabelKeys[0]", "Invalid value"),
    (put("spec.affinity", {"podAffinity": {REQ: [{"topologyKey": "zone", "mismatchLabelKeys": ["tenant"]}]}}),
     f"spec.affinity.podAffinity.{REQ}[0].mismatchLabelKeys",
     "Forbidden: must not be specified when labelSelector is not set"),
    (spread({"maxSkew": 0}), f"{TSC}[0].maxSkew", "must be greater than zero"),
    (spread({"topologyKey": ""}), f"{TSC}[0].topologyKey", "Required value: can not be empty"),
    (spread({"whenUnsatisfiable": "Sometimes"}), f"{TSC}[0].whenUnsatisfiable",
     'Unsupported value: "Sometimes": supported values: "DoNotSchedule", "ScheduleAnyway"'),
    (spread({"whenUnsatisfiable": ""}), f"{TSC}[0].whenUnsatisfiable", "Required value"),
    (spread({}, {"maxSkew": 2}), f"{TSC}[1].{{topologyKey, whenUnsatisfiable}}",
     'Duplicate value: "{zone, DoNotSchedule}"'),
    (spread({"minDomains": 0}), f"{TSC}[0].minDomains", "must be greater than 0"),
    (spread({"minDomains": 2, "whenUnsatisfiable": "ScheduleAnyway"}), f"{TSC}[0].minDomains",
     "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not ScheduleAnyway"),
    (spread({"nodeAffinityPolicy": "Sometimes"}), f"{TSC}[0].nodeAffinityPolicy", "Unsupported value"),
    (spread({"nodeTaintsPolicy": "honor"}), f"{TSC}[0].nodeTaintsPolicy", "Unsupported value"),
    (spread({"labelSelector": {"matchLabels": {"app": "-bad-"}}}), f"{TSC}[0].labelSelector.matchLabels[app]",
     "Invalid value"),
    (spread({"matchLabelKeys": ["app"]}), f"{TSC}[0].matchLabelKeys[0]", "exists in both matchLabelKeys and labelSelector"),
    (spread({"matchLabelKeys": ["pod-template-hash"], "labelSelector": None}), f"{TSC}[0].matchLabelKeys",
     "Forbidden: must not be specified when labelSelector is not set"),
]


def _drop_nones(doc):
    if isinstance(doc, dict):
        return {k: _drop_nones(v) for k, v in doc.items() if v is not None}
    if isinstance(doc, list):
        return [_drop_nones(v) for v in doc]
    return doc


@pytest.mark.parametrize("case", INVALID, ids=[c[1] + ":" + c[2][:30] for c in INVALID])
def test_invalid(case):
    mutate, path, text = case
    doc = copy.deepcopy(BASES["Pod"])
    mutate(doc)
    errors = errors_of(_drop_nones(doc))
    shown = "\n".join(str(e) for e in errors)
    matching = [e for e in errors if e.path == path]
    assert matching, f"no error at {path}; got:\n{shown}"
    assert any(text in e.detail for e in matching), f"{text!r} not in:\n{shown}"
    assert len(errors) == 1, f"expected only the error at {path}; got:\n{shown}"


VALID = [
    anti(),
    anti(weight=1),
    anti(weight=100),
    anti({"namespaces": ["other"], "namespaceSelector": {}}),
    anti({"matchLabelKeys": ["pod-template-hash"], "mismatchLabelKeys": ["tenant"]}),
    anti({"mismatchLabelKeys": ["app"]}),          # NotIn on a selector key is allowed
    put("spec.affinity", {"podAffinity": {REQ: [{"labelSelector": {}, "topologyKey": "zone"}]}}),
    spread({}),
    spread({}, {"whenUnsatisfiable": "ScheduleAnyway"}),
    spread({"minDomains": 3, "nodeAffinityPolicy": "Ignore", "nodeTaintsPolicy": "Honor",
            "matchLabelKeys": ["pod-template-hash"]}),
    spread({"topologyKey": "kubernetes.io/hostname"}, {"topologyKey": "topology.kubernetes.io/zone"}),
]


@pytest.mark.parametrize("mutate", VALID)
def test_valid(mutate):
    doc = copy.deepcopy(BASES["Pod"])
    mutate(doc)
    assert errors_of(doc) == []


def test_deployment_template_paths():
    doc = copy.deepcopy(BASES["Deployment"])
    doc["spec"]["template"]["spec"]["topologySpreadConstraints"] = [
        {"maxSkew": -1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]
    assert [e.path for e in errors_of(doc)] == ["spec.template.spec.topologySpreadConstraints[0].maxSkew"]
