"""Validation of downwardAPI and projected volumes (Kubernetes' messages): one valid pod
broken by one field, the exact path checked."""

import copy

import pytest

from tests.unit.test_validation import BASES, errors_of

DAPI_ITEM = {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}


def with_volume(vol):
    doc = copy.deepcopy(BASES["Pod"])
    doc["spec"]["volumes"].append(vol)
    return doc


VALID = [
    {"name": "info", "downwardAPI": {"defaultMode": 0o444, "items": [
        DAPI_ITEM,
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "team", "fieldRef": {"fieldPath": "metadata.labels['team']"}},
        {"path": "node", "fieldRef": {"fieldPath": "spec.nodeName"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "web", "resource": "limits.cpu", "divisor": "1m"},
         "mode": 0o400}]}},
    {"name": "all", "projected": {"defaultMode": 0o440, "sources": [
        {"secret": {"name": "s", "items": [{"key": "k", "path": "s/k"}]}},
        {"configMap": {"name": "c", "optional": True}},
        {"downwardAPI": {"items": [DAPI_ITEM]}},
        {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "token"}}]}},
    {"name": "tok", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
]


@pytest.mark.parametrize("vol", VALID, ids=[v["name"] for v in VALID])
def test_valid(vol):
    assert errors_of(with_volume(vol)) == []


V = "spec.volumes[1]"
INVALID = [
    ({"downwardAPI": {"items": [{"fieldRef": {"fieldPath": "metadata.name"}}]}},
     f"{V}.downwardAPI.items[0].path", "Required value"),
    ({"downwardAPI": {"items": [{"path": "../x", "fieldRef": {"fieldPath": "metadata.name"}}]}},
     f"{V}.downwardAPI.items[0].path", "must not contain '..'"),
    ({"downwardAPI": {"items": [{"path": "..data", "fieldRef": {"fieldPath": "metadata.name"}}]}},
     f"{V}.downwardAPI.items[0].path", "must not start with '..'"),
    ({"downwardAPI": {"items": [{"path": "x"}]}},
     f"{V}.downwardAPI.items[0]", "one of fieldRef and resourceFieldRef is required"),
    ({"downwardAPI": {"items": [{"path": "x", "fieldRef": {"fieldPath": "metadata.name"},
                                 "resourceFieldRef": {"containerName": "web", "resource": "limits.cpu"}}]}},
     f"{V}.downwardAPI.items[0]", "can not be specified simultaneously"),
    ({"downwardAPI": {"items": [{"path": "x", "fieldRef": {"fieldPath": "spec.hostname"}}]}},
     f"{V}.downwardAPI.items[0].fieldRef.fieldPath", 'Unsupported value: "spec.hostname"'),
    ({"downwardAPI": {"items": [{"path": "x", "resourceFieldRef": {"resource": "limits.cpu"}}]}},
     f"{V}.downwardAPI.items[0].resourceFieldRef.containerName", "Required value"),
    ({"downwardAPI": {"items": [{"path": "x", "resourceFieldRef": {"containerName": "web", "resource": "limits.gpu"}}]}},
     f"{V}.downwardAPI.items[0].resourceFieldRef.resource", "Unsupported value"),
    ({"downwardAPI": {"defaultMode": 0o1000, "items": [DAPI_ITEM]}},
     f"{V}.downwardAPI.defaultMode", "between 0 and 0777 (octal)"),
    ({"downwardAPI": {"items": [dict(DAPI_ITEM, mode=-1)]}},
     f"{V}.downwardAPI.items[0].mode", "between 0 and 0777 (octal)"),
    ({"projected": {"sources": [{"secret": {"name": "s"}, "configMap": {"name": "c"}}]}},
     f"{V}.projected.sources[0]", "may not specify more than 1 volume type per source"),
    ({"projected": {"sources": [{}]}}, f"{V}.projected.sources[0]", "Required value"),
    ({"projected": {"sources": [{"secret": {}}]}}, f"{V}.projected.sources[0].secret.name", "Required value"),
    ({"projected": {"sources": [{"configMap": {"name": "c", "items": [{"key": "k"}]}}]}},
     f"{V}.projected.sources[0].configMap.items[0].path", "Required value"),
    ({"projected": {"sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 599}}]}},
     f"{V}.projected.sources[0].serviceAccountToken.expirationSeconds", "less than 10 minutes"),
    ({"projected": {"sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 2 ** 33}}]}},
     f"{V}.projected.sources[0].serviceAccountToken.expirationSeconds", "larger than 2^32"),
    ({"projected": {"sources": [{"serviceAccountToken": {"audience": "a"}}]}},
     f"{V}.projected.sources[0].serviceAccountToken.path", "Required value"),
    ({"projected": {"sources": [{"serviceAccountToken": {"path": "token"}},
                                {"downwardAPI": {"items": [{"path": "token",
                                                            "fieldRef": {"fieldPath": "metadata.uid"}}]}}]}},
     f"{V}.projected.sources[1].downwardAPI.items[0].path", "conflicting duplicate paths"),
    ({"projected": {"sources": [{"secret": {"name": "s", "items": [{"key": "a", "path": "x"}]}},
                                {"configMap": {"name": "c", "items": [{"key": "b", "path": "x"}]}}]}},
     f"{V}.projected.sources[1].configMap.items[0].path", "conflicting duplicate paths"),
    ({"projected": {"defaultMode": 0o7777, "sources": []}}, f"{V}.projected.defaultMode", "0777 (octal)"),
    ({"projected": {}, "emptyDir": {}}, f"{V}.projected", "may not specify more than 1 volume type"),
]


@pytest.mark.parametrize("source,path,text", INVALID, ids=[c[1].split(".", 2)[2] + f"-{i}" for i, c in enumerate(INVALID)])
def test_invalid(source, path, text):
    errors = errors_of(with_volume(dict(source, name="v")))
    shown = "\n".join(str(e) for e in errors)
    assert [e.path for e in errors] == [path], shown
    assert text in errors[0].detail, shown
