"""The built-in ClusterRoles kept by the leader's bootstrap (controlplane/bootstrap.py:
ensure_rbac_defaults, controlplane/apiserver/authz/policy.py)."""

from controlplane import bootstrap
from controlplane.apiserver.authz import policy
from controlplane.store.commands import Create, Update
from skiff.api import kinds
from tests.unit.test_bootstrap_api import StateBackedStore


def stored(store, kind, name):
    env = store.get((kind, "", name))
    return None if env is None else kinds.unwrap(env)[1]


def test_builtins_are_created_once_and_admitted():
    store = StateBackedStore()
    bootstrap.ensure_rbac_defaults(store)
    assert all(isinstance(c, Create) for c in store.proposed)
    for name in ("cluster-admin", "admin", "edit", "view"):
        role = stored(store, "ClusterRole", name)
        assert role is not None and role.metadata.labels["kubernetes.io/bootstrapping"] == "rbac-defaults"
    binding = stored(store, "ClusterRoleBinding", "cluster-admin")
    assert [(s.kind, s.name) for s in binding.subjects] == [("Group", "system:masters")]
    store.proposed.clear()
    bootstrap.ensure_rbac_defaults(store)
    assert store.proposed == [], "a second pass must write nothing"


def _edit(store, kind, name, change):
    obj = stored(store, kind, name)
    change(obj)
    cmd = Update(f"user-edit-{kind}-{name}", kinds.encode(kinds.wrap(obj)), "", obj.metadata.resource_version)
    assert store.propose(cmd, 1.0)[0] == "ok"
    store.proposed.clear()


def test_changed_rules_are_put_back():
    store = StateBackedStore()
    bootstrap.ensure_rbac_defaults(store)
    _edit(store, "ClusterRole", "view", lambda r: r.rules.add(api_groups=[""], resources=["secrets"], verbs=["get"]))
    _edit(store, "ClusterRoleBinding", "cluster-admin", lambda b: b.subjects.add(kind="User", name="mallory",
                                                                                   api_group=policy.RBAC_GROUP))
    bootstrap.ensure_rbac_defaults(store)
    assert len(store.proposed) == 2 and all(isinstance(c, Update) for c in store.proposed)
    want = {r.metadata.name: list(r.rules) for r in policy.cluster_roles()}
    assert list(stored(store, "ClusterRole", "view").rules) == want["view"]
    assert [s.name for s in stored(store, "ClusterRoleBinding", "cluster-admin").subjects] == ["system:masters"]


def test_autoupdate_false_keeps_a_users_changes():
    store = StateBackedStore()
    bootstrap.ensure_rbac_defaults(store)

    def opt_out(role):
        role.metadata.annotations[policy.AUTOUPDATE] = "false"
        del role.rules[1:]
    _edit(store, "ClusterRole", "edit", opt_out)
    bootstrap.ensure_rbac_defaults(store)
    assert store.proposed == []
    assert len(stored(store, "ClusterRole", "edit").rules) == 1


def test_a_deleted_builtin_comes_back():
    store = StateBackedStore()
    bootstrap.ensure_rbac_defaults(store)
    from controlplane.store.commands import Delete
    assert store.propose(Delete("rm", ("ClusterRole", "", "view"), "", "", None, "2024-01-01T00:00:00Z", ""),
                         1.0)[0] == "ok"
    bootstrap.ensure_rbac_defaults(store)
    assert stored(store, "ClusterRole", "view") is not None


def test_view_is_narrower_than_edit_narrower_than_admin():
    rules = {r.metadata.name: r.rules for r in policy.cluster_roles()}
    as_set = {n: {(g, res, v) for r in rs for g in r.api_groups for res in r.resources for v in r.verbs}
              for n, rs in rules.items()}
    assert as_set["view"] < as_set["edit"] < as_set["admin"]
    assert not any(res == "secrets" for _, res, _ in as_set["view"])
