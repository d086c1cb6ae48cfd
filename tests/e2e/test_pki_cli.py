"""`skiff token` and `skiff config` against a loopback lab (TLS on, as every lab)."""

import os

import yaml

from skiff import clientconfig
from skiff.pki import certs, tokens


def test_token_create_list_delete(lab):
    token = lab.out("token", "create", "--ttl", "1h", "--description", "e2e").strip()
    digest, token_id, secret_part = tokens.parse_token(token)
    ca = clientconfig.resolve(config_path=lab.config)[1].ca
    assert digest == certs.ca_digest(ca)
    listed = lab.out("token", "list")
    assert listed.splitlines()[0].split() == ["TOKEN", "ID", "EXPIRES", "DESCRIPTION"]
    line = next(ln for ln in listed.splitlines() if ln.startswith(token_id))
    assert line.split()[-1] == "e2e"
    # the secret is stored hashed only
    secret = yaml.safe_load(lab.out("get", "secret", tokens.secret_name(token_id), "-n", "kube-system", "-o", "yaml"))
    assert secret_part not in str(secret)
    assert lab.out("token", "delete", token).strip() == f"join token {token_id} deleted"
    assert token_id not in lab.out("token", "list")
    r = lab.run("token", "delete", token_id, check=False)
    assert r.returncode == 1 and "not found" in r.stdout


def test_contexts_and_a_new_user(lab, tmp_path):
    out = lab.out("config", "get-contexts")
    assert "* " in out and "admin@skiff-lab" in out and "skiff:admin" in out
    assert "DATA+OMITTED" in lab.out("config", "view")
    assert "alice@skiff-lab" in lab.out("config", "create-user", "alice", "--group", "devs")
    try:
        lab.out("config", "use-context", "alice@skiff-lab")
        # alice's certificate authenticates her (RBAC, not the handshake, answers): without a
        # binding she is forbidden by name; the admin's view binding lets her read
        r = lab.run("get", "ns", "default", check=False)
        assert r.returncode != 0 and 'User "alice" cannot get resource "namespaces"' in r.stdout + r.stderr, r
        lab.out("config", "use-context", "admin@skiff-lab")
        binding = tmp_path / "alice-view.yaml"
        binding.write_text(yaml.safe_dump({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "alice-view"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]}))
        lab.out("apply", "-f", binding)
        lab.out("config", "use-context", "alice@skiff-lab")
        assert "default" in lab.out("get", "ns", "default")
        _endpoints, creds = clientconfig.resolve(config_path=lab.config)
        assert certs.subject(creds.cert) == ("alice", ("devs",))
    finally:
        lab.out("config", "use-context", "admin@skiff-lab")
        lab.run("delete", "clusterrolebinding", "alice-view", check=False)


def test_the_cli_without_a_certificate_is_refused(lab, tmp_path):
    doc = clientconfig.load(lab.config)
    ctx = clientconfig.current(doc, lab.config)
    bare = {"currentContext": "bare", "contexts": [{"name": "bare", "servers": ctx["servers"],
                                                    "certificateAuthorityData": ctx["certificateAuthorityData"]}]}
    path = os.path.join(str(tmp_path), "config")
    clientconfig.save(path, bare)
    plain = {"currentContext": "plain", "contexts": [{"name": "plain", "servers": ctx["servers"]}]}
    plain_path = os.path.join(str(tmp_path), "plain")
    clientconfig.save(plain_path, plain)
    for p in (path, plain_path):
        other = type(lab)(lab.lab_dir, p)
        r = other.run("get", "ns", check=False, timeout=90)   # the client tries every replica for 20 s
        assert r.returncode != 0 and "no control-plane replica answered" in r.stderr, r.stderr
