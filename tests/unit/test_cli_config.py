"""`skiff config view|get-contexts|use-context|create-user` on a config file (no cluster)."""

import pytest

from skiff import clientconfig
from skiff.cli.main import main
from skiff.pki import authority, certs


@pytest.fixture
def lab_config(tmp_path, monkeypatch):
    pki = authority.Authority(str(tmp_path / "pki"))
    pki.create()
    cert, key = pki.write_admin()
    path = str(tmp_path / "config")
    doc = {"lab": str(tmp_path)}
    clientconfig.upsert_context(doc, clientconfig.context_doc(
        "admin@skiff-lab", ["127.0.0.1:7100"], user="skiff:admin", ca=pki.ca_pem(),
        cert=open(cert, "rb").read(), key=open(key, "rb").read()))
    clientconfig.save(path, doc)
    monkeypatch.setenv("SKIFF_CONFIG", path)
    monkeypatch.delenv("SKIFF_SERVER", raising=False)
    return path, pki


def test_view_omits_key_material(lab_config, capsys):
    assert main(["config", "view"]) == 0
    out = capsys.readouterr().out
    assert "clientKeyData: DATA+OMITTED" in out and "BEGIN" not in out and "127.0.0.1:7100" in out


def test_create_user_get_contexts_and_use_context(lab_config, capsys):
    path, pki = lab_config
    assert main(["config", "create-user", "alice", "--group", "devs", "--group", "qa"]) == 0
    assert 'context "alice@skiff-lab" added' in capsys.readouterr().out
    assert main(["config", "get-contexts"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["CURRENT", "NAME", "USER", "SERVERS"]
    assert lines[1].split() == ["*", "admin@skiff-lab", "skiff:admin", "127.0.0.1:7100"]
    assert lines[2].split() == ["alice@skiff-lab", "alice", "127.0.0.1:7100"]
    assert main(["config", "use-context", "alice@skiff-lab"]) == 0
    assert 'Switched to context "alice@skiff-lab".' in capsys.readouterr().out
    _endpoints, creds = clientconfig.resolve(config_path=path)
    assert certs.subject(creds.cert) == ("alice", ("devs", "qa"))
    assert certs.issued_by(creds.cert, pki.ca_pem()) and certs.key_matches(creds.cert, creds.key)


def test_use_context_names_a_missing_context(lab_config, capsys):
    assert main(["config", "use-context", "nope"]) == 1
    assert 'no context exists with the name: "nope"' in capsys.readouterr().err


def test_create_user_needs_the_ca_of_the_context(lab_config, tmp_path, capsys):
    other = authority.Authority(str(tmp_path / "other"))
    other.create()
    assert main(["config", "create-user", "bob", "--pki-dir", other.dir]) == 1
    assert "is not the CA of context admin@skiff-lab" in capsys.readouterr().err
    assert main(["config", "create-user", "bob", "--pki-dir", str(tmp_path / "none")]) == 1
    assert "no CA key in" in capsys.readouterr().err
