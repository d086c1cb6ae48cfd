"""The DaemonSet kind: defaults, validation (Kubernetes' ValidateDaemonSetSpec rules), immutability,
the table row. The base object is test_validation.BASES["DaemonSet"]."""

import copy
import re

import pytest

from skiff.api import codec, kinds
from skiff.api import objects_pb2 as pb
from tests.unit.test_defaults import defaulted
from tests.unit.test_validation import BASES, both, drop, errors_of, put, update_errors

RU = "spec.updateStrategy.rollingUpdate"


def test_defaults():
    spec = defaulted(copy.deepcopy(BASES["DaemonSet"]))["spec"]
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["template"]["spec"]["restartPolicy"] == "Always"


def test_on_delete_gets_no_rolling_update_and_explicit_values_stay():
    base = copy.deepcopy(BASES["DaemonSet"])
    put("spec.updateStrategy", {"type": "OnDelete"})(base)
    assert defaulted(base)["spec"]["updateStrategy"] == {"type": "OnDelete"}
    base = copy.deepcopy(BASES["DaemonSet"])
    put("spec.updateStrategy", {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "10%"}})(base)
    put("spec.revisionHistoryLimit", 0)(base)
    spec = defaulted(base)["spec"]
    assert spec["updateStrategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": "10%"}
    assert spec["revisionHistoryLimit"] == 0


INVALID = [
    (drop("spec.selector"), "spec.selector", "Required value"),
    (put("spec.selector", {"matchLabels": {"app": "other"}}), "spec.selector", "does not match template"),
    (put("spec.template.spec.restartPolicy", "OnFailure"), "spec.template.spec.restartPolicy", '"Always"'),
    (put("spec.updateStrategy", {"type": "Sometimes"}), "spec.updateStrategy.type", "Unsupported value"),
    (put("spec.updateStrategy", {"type": "OnDelete", "rollingUpdate": {"maxUnavailable": 2}}),
     RU, "'OnDelete'"),
    (put("spec.updateStrategy", {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}),
     f"{RU}.maxUnavailable", "Required value: cannot be 0 when maxSurge is 0"),
    (put("spec.updateStrategy", {"rollingUpdate": {"maxUnavailable": "0%"}}),
     f"{RU}.maxUnavailable", "cannot be 0 when maxSurge is 0"),
    (put("spec.updateStrategy", {"rollingUpdate": {"maxSurge": 1}}),   # maxUnavailable defaults to 1
     f"{RU}.maxSurge", "may not be set when maxUnavailable is non-zero"),
    (put("spec.updateStrategy", {"rollingUpdate": {"maxUnavailable": "many"}}), f"{RU}.maxUnavailable", "percentage"),
    (put("spec.updateStrategy", {"rollingUpdate": {"maxUnavailable": -1}}), f"{RU}.maxUnavailable",
     "greater than or equal to 0"),
    (put("spec.updateStrategy", {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "101%"}}), f"{RU}.maxSurge",
     "100%"),
    (put("spec.revisionHistoryLimit", -1), "spec.revisionHistoryLimit", "greater than or equal to 0"),
    (put("spec.minReadySeconds", -1), "spec.minReadySeconds", "greater than or equal to 0"),
    (put("spec.template.spec.activeDeadlineSeconds", 10), "spec.template.spec.activeDeadlineSeconds",
     "not supported"),
]


@pytest.mark.parametrize("case", INVALID, ids=[c[1] + ":" + c[2] for c in INVALID])
def test_invalid(case):
    mutate, path, text = case
    doc = copy.deepcopy(BASES["DaemonSet"])
    mutate(doc)
    errors = errors_of(doc)
    shown = "\n".join(str(e) for e in errors)
    assert any(e.path == path and text in e.detail for e in errors), shown


@pytest.mark.parametrize("mutate", [
    put("spec.updateStrategy", {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}}),
    put("spec.updateStrategy", {"rollingUpdate": {"maxUnavailable": "100%"}}),
    put("spec.updateStrategy", {"type": "OnDelete"}),
    both(put("spec.template.spec.nodeSelector", {"disk": "ssd"}),
         put("spec.template.spec.tolerations", [{"operator": "Exists"}])),
])
def test_valid_variants(mutate):
    doc = copy.deepcopy(BASES["DaemonSet"])
    mutate(doc)
    assert errors_of(doc) == []


def test_selector_is_immutable_template_is_not():
    errors = update_errors("DaemonSet", put("spec.selector", {"matchLabels": {"app": "agent", "x": "y"}}))
    assert [e.path for e in errors] == ["spec.selector"] and "field is immutable" in errors[0].detail
    assert update_errors("DaemonSet", put("spec.template.spec.containers.0.image", "nginx:2")) == []


def test_registry_record_and_row():
    kind = kinds.lookup("ds")
    assert (kind.name, kind.resource, kind.daemon, kind.owns, kind.scale) == (
        "DaemonSet", "daemonsets.apps", True, ("Pod",), False)
    ds = codec.decode(pb.DaemonSet, copy.deepcopy(BASES["DaemonSet"]))
    ds.spec.template.spec.node_selector.update({"role": "edge", "disk": "ssd"})
    ds.status.desired_number_scheduled, ds.status.current_number_scheduled = 3, 2
    ds.status.number_ready, ds.status.updated_number_scheduled, ds.status.number_available = 1, 2, 1
    values, wide = kind.row(ds)
    assert kind.columns == ("DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE")
    assert values == ["3", "2", "1", "2", "1", "disk=ssd,role=edge"]
    assert wide == ["web", "nginx:1.27", "app=agent"]
    assert re.search(r"^Number of Nodes Misscheduled: +0$", kind.describe(ds), re.M)
