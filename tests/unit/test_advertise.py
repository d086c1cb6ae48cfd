"""Advertise addresses (skiff/advertise.py): a daemon refuses an address that is not bound
on its machine, before it starts anything, naming the key; warns on Vagrant's NAT
address; a wildcard is fine only where it is a listen address."""

import pytest

from controlplane import main as cpmain
from nodeagent import main as agentmain
from skiff import advertise

UNBOUND = "192.0.2.77"    # TEST-NET-1: never an address of a test machine


@pytest.mark.parametrize("addresses,listen_only,errors,warnings", [
    ([("raftAddress", "127.0.0.1:7200")], (), [], []),
    ([("raftAddress", "127.0.0.5:7200")], (), [], []),          # all of 127/8 is local
    ([("raftAddress", f"{UNBOUND}:7200")], (), ["raftAddress"], []),
    ([("apiAddress", "0.0.0.0:7100")], ("apiAddress",), [], []),
    ([("raftAddress", "0.0.0.0:7200")], (), ["raftAddress"], []),
    ([("advertiseApiAddress", "")], (), [], []),                 # not set: nothing to check
    ([("address", UNBOUND), ("listen", "127.0.0.1:10250")], ("listen",), ["address"], []),
    ([("address", "no-such-host.invalid")], (), ["address"], []),
])
def test_check(addresses, listen_only, errors, warnings):
    errs, warns = advertise.check(addresses, listen_only)
    assert [e.split(":")[0] for e in errs] == errors
    assert warns == warnings


def test_vagrant_nat_address_warns(monkeypatch):
    monkeypatch.setattr(advertise, "bound", lambda host: "")
    errs, warns = advertise.check([("address", "10.0.2.15")])
    assert errs == [] and len(warns) == 1 and "Vagrant's NAT" in warns[0]


def test_unbound_message_names_the_value():
    errs, _ = advertise.check([("raftAddress", f"{UNBOUND}:7200")])
    assert f"{UNBOUND} is not an address of this machine" in errs[0]


def test_replica_refuses_unbound_raft_address(tmp_path, capsys):
    pw = tmp_path / "pw"
    pw.write_text("p" * 24)
    cfg = tmp_path / "cp.yaml"
    cfg.write_text(f"name: cp1\ndataDir: {tmp_path}/d\napiAddress: 0.0.0.0:7100\n"
                   f"raftAddress: {UNBOUND}:7200\nraftPasswordFile: {pw}\n")
    assert cpmain.main(["--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "raftAddress" in err and UNBOUND in err
    assert not (tmp_path / "d").exists()     # refused before the store was opened


def test_agent_refuses_unbound_address(tmp_path, capsys):
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"nodeName: n1\nservers: ['127.0.0.1:7100']\naddress: {UNBOUND}\n"
                   f"listen: 0.0.0.0:10250\ndockerHost: unix:///nonexistent.sock\ndataDir: {tmp_path}/a\n")
    assert agentmain.main(["--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "address" in err and UNBOUND in err
