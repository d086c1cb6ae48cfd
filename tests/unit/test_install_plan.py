"""The installer's render + plan (skiff/install): table-driven.

What matters: a rerun with the same inputs is a no-op (no write, no restart); a changed
input rewrites exactly the files it appears in and restarts exactly the service that
reads them; the rendered configs are what the daemons' own loaders accept; the units
carry k3s' supervision settings; /etc/hosts loses the 127.0.1.1 hostname line.
"""

import dataclasses
import datetime
import os
import tempfile

import pytest
import yaml

from controlplane import config as cpconfig
from nodeagent import config as agentconfig
from skiff import clientconfig
from skiff.install import cluster
from skiff.install import plan as planmod
from skiff.install import render
from skiff.pki import certs, tokens
from skiff.install.runner import exec_spec, parse_unit

CPS = (("cp1", "192.168.56.11"), ("cp2", "192.168.56.12"), ("cp3", "192.168.56.13"))
HOSTS = "127.0.0.1\tlocalhost\n127.0.1.1 cp1 cp1\n::1 localhost ip6-localhost\n"
# One cluster's shared secrets, made the way the first replica makes them.
MATERIAL = cluster.ensure(tempfile.mkdtemp(prefix="skiff-test-install-"))
TOKEN = tokens.format_token(certs.ca_digest(MATERIAL.ca_crt), "abcdef", "0123456789abcdef")


def tls_inputs(name, address, hostname=None, current=None, material=MATERIAL, **kw):
    """A replica's Inputs with TLS: its certificate from cluster.replica_cert (kept if current fits)."""
    hostname = hostname or name
    cert, key, _ = cluster.replica_cert(material, name, address, hostname, current)
    return render.Inputs(role="controlplane", name=name, address=address, hostname=hostname,
                         controlplanes=kw.pop("controlplanes", CPS), raft_password="p" * 48,
                         python="/opt/skiff/venv/bin/python", cluster=material, serving_cert=cert,
                         serving_key=key, **kw)


CP = tls_inputs("cp1", "192.168.56.11")
PLAIN_CP = render.Inputs(role="controlplane", name="cp1", address="192.168.56.11", hostname="cp1",
                         controlplanes=CPS, raft_password="p" * 48, python="/opt/skiff/venv/bin/python")
AGENT = render.Inputs(role="agent", name="node1", address="192.168.56.21", hostname="node1",
                      controlplanes=CPS, python="/opt/skiff/venv/bin/python", dns_upstream="192.168.121.1",
                      join_token=TOKEN)
SYSCTLS_DONE = {k: v for k, v in render.SYSCTLS}
CP_UNIT, AGENT_UNIT = render.CONTROLPLANE_UNIT, render.AGENT_UNIT


def installed(inp, hosts=HOSTS, active=True):
    """The machine as a completed install of inp leaves it."""
    files = render.render(inp, (hosts, 0o644))
    return planmod.Machine(
        files={f.path: (f.content, f.mode) for f in files},
        dirs=frozenset(d for d, _ in _dirs(inp)), modules=frozenset(render.MODULES),
        sysctls=dict(SYSCTLS_DONE),
        services={u: planmod.ServiceState(True, active) for u in render.services_of(inp)}, ntp=True)


def _dirs(inp):
    return [(render.ETC, 0o755), (f"{render.STATE}/{inp.role}", 0o700)]


def do_plan(inp, machine, hosts=HOSTS):
    files = render.render(inp, (hosts, 0o644))
    return planmod.plan(files, _dirs(inp), machine, render.services_of(inp), render.SYSCTLS,
                        render.MODULES)


def written(p):
    return sorted(f.path for f in p.writes)


@pytest.mark.parametrize("name,inp,change,want_writes,want_restart", [
    ("same inputs: nothing", CP, {}, [], []),
    ("same agent inputs: nothing", AGENT, {}, [], []),
    ("same plaintext inputs: nothing", PLAIN_CP, {}, [], []),
    ("raft password: its file only, replica restarts", CP, {"raft_password": "q" * 48},
     ["/etc/skiff/raft-password"], [CP_UNIT]),
    ("a new peer address: config + admin config", CP,
     {"controlplanes": CPS[:2] + (("cp3", "192.168.56.14"),)},
     ["/etc/skiff/admin.yaml", "/etc/skiff/controlplane.yaml"], [CP_UNIT]),
    ("network backend: config only", CP, {"network_backend": "vxlan"},
     ["/etc/skiff/controlplane.yaml"], [CP_UNIT]),
    ("python path: the unit, daemon-reload", CP, {"python": "/usr/bin/python3"},
     ["/etc/systemd/system/skiff-controlplane.service"], [CP_UNIT]),
    ("new code version: env file only", CP, {"code_version": "abc123"},
     ["/etc/skiff/controlplane.env"], [CP_UNIT]),
    ("join token: agent config only", AGENT, {"join_token": TOKEN[:-1] + "x"},
     ["/etc/skiff/agent.yaml"], [AGENT_UNIT]),
    ("new encryption key (rotation): its copy only, replica restarts", CP,
     {"cluster": dataclasses.replace(MATERIAL, encryption_config=MATERIAL.encryption_config + "# k2\n")},
     ["/etc/skiff/encryption-config.yaml"], [CP_UNIT]),
    ("agent dns upstream: agent config only", AGENT, {"dns_upstream": "10.0.0.2"},
     ["/etc/skiff/agent.yaml"], [AGENT_UNIT]),
    ("agent servers change", AGENT, {"controlplanes": CPS[:1]}, ["/etc/skiff/agent.yaml"], [AGENT_UNIT]),
])
def test_rerun_changes_exactly_the_input(name, inp, change, want_writes, want_restart):
    machine = installed(inp)
    p = do_plan(dataclasses.replace(inp, **change), machine)
    assert written(p) == want_writes, name
    assert p.restart == want_restart, name
    assert not p.start and not p.enable and not p.modules and not p.sysctls and not p.mkdirs
    assert p.daemon_reload == any(w.endswith(".service") for w in want_writes)
    assert p.noop == (not want_writes)


def test_fresh_machine_gets_everything():
    empty = planmod.Machine(files={}, sysctls={"net.ipv4.ip_forward": "0",
                                               "net.ipv4.conf.all.rp_filter": "1",
                                               "net.ipv4.conf.default.rp_filter": "1"}, ntp=False)
    p = do_plan(AGENT, empty, hosts=HOSTS)
    assert "/etc/skiff/agent.yaml" in written(p) and "/etc/hosts" in written(p)
    assert p.enable == [render.DOCKER_UNIT, AGENT_UNIT] and p.start == [render.DOCKER_UNIT, AGENT_UNIT]
    assert p.restart == []
    assert p.modules == list(render.MODULES) and p.daemon_reload and p.enable_ntp
    assert ("net.ipv4.ip_forward", "1") in p.sysctls
    assert p.missing_sysctls == ["net.bridge.bridge-nf-call-iptables"]   # before br_netfilter loads
    assert [m for m, _ in p.mkdirs] == [render.ETC, f"{render.STATE}/agent"]


@pytest.mark.parametrize("what,machine_change,want", [
    ("stopped service is started, not restarted", {"services": {CP_UNIT: planmod.ServiceState(True, False)}},
     {"start": [CP_UNIT], "restart": [], "enable": []}),
    ("disabled service is enabled only", {"services": {CP_UNIT: planmod.ServiceState(False, True)}},
     {"start": [], "restart": [], "enable": [CP_UNIT]}),
    ("mode drift is a chmod and a restart", {"files_mode": ("/etc/skiff/raft-password", 0o644)},
     {"chmods": ["/etc/skiff/raft-password"], "restart": [CP_UNIT]}),
    ("sysctl drift is set again, nothing restarts", {"sysctls": {"net.ipv4.ip_forward": "0"}},
     {"sysctls": [("net.ipv4.ip_forward", "1")], "restart": []}),
    ("module unloaded is loaded", {"modules": frozenset({"overlay", "br_netfilter"})},
     {"modules": ["vxlan"], "restart": []}),
    ("time sync off is enabled", {"ntp": False}, {"enable_ntp": True}),
])
def test_machine_drift(what, machine_change, want):
    m = installed(CP)
    kw = {}
    if "files_mode" in machine_change:
        path, mode = machine_change.pop("files_mode")
        files = dict(m.files)
        files[path] = (files[path][0], mode)
        kw["files"] = files
    if "sysctls" in machine_change:
        kw["sysctls"] = {**m.sysctls, **machine_change.pop("sysctls")}
    kw.update(machine_change)
    p = do_plan(CP, dataclasses.replace(m, **kw))
    for attr, value in want.items():
        got = getattr(p, attr)
        if attr == "chmods":
            got = [f.path for f in got]
        assert got == value, what
    assert not p.writes, what


@pytest.mark.parametrize("text,want", [
    ("127.0.0.1\tlocalhost\n127.0.1.1 cp1 cp1\n",
     "127.0.0.1\tlocalhost\n192.168.56.11\tcp1\n"),
    ("127.0.0.1 localhost\n127.0.1.1 cp1.example.org cp1\n::1 localhost\n",
     "127.0.0.1 localhost\n::1 localhost\n192.168.56.11\tcp1.example.org cp1\n"),
    ("127.0.0.1 localhost cp1\n", "127.0.0.1\tlocalhost\n192.168.56.11\tcp1\n"),
    ("127.0.0.1 localhost\n192.168.56.11 cp1\n", "127.0.0.1 localhost\n192.168.56.11 cp1\n"),
    ("", "192.168.56.11\tcp1\n"),
    ("# comment\n10.0.0.5 other\n", "# comment\n10.0.0.5 other\n192.168.56.11\tcp1\n"),
])
def test_fix_hosts(text, want):
    assert render.fix_hosts(text, "cp1" if "example" not in text else "cp1.example.org",
                            "192.168.56.11") == want
    assert render.fix_hosts(want, "cp1" if "example" not in text else "cp1.example.org",
                            "192.168.56.11") == want   # idempotent


def _write_all(tmp_path, files):
    out = {}
    for f in files:
        out[f.path] = tmp_path / f.path.lstrip("/").replace("/", "_")
        out[f.path].write_text(f.content)
    return out


def test_rendered_configs_load_with_the_daemons_loaders(tmp_path):
    files = render.render(PLAIN_CP, (HOSTS, 0o644))
    paths = _write_all(tmp_path, files)
    text = paths["/etc/skiff/controlplane.yaml"].read_text().replace(
        "/etc/skiff/raft-password", str(paths["/etc/skiff/raft-password"]))
    (tmp_path / "cp.yaml").write_text(text)
    cfg = cpconfig.load(str(tmp_path / "cp.yaml"))
    assert cfg.raft_address == "192.168.56.11:7200" and cfg.api_address == "192.168.56.11:7100"
    assert [p.name for p in cfg.peers] == ["cp2", "cp3"] and cfg.network.backend == "host-gw"
    assert cfg.data_dir == "/var/lib/skiff/controlplane"
    agent = agentconfig.load(str(_write_all(tmp_path, render.render(AGENT, None))["/etc/skiff/agent.yaml"]))
    assert agent.address == "192.168.56.21" and agent.listen == "192.168.56.21:10250"
    assert agent.servers == ("192.168.56.11:7100", "192.168.56.12:7100", "192.168.56.13:7100")
    assert agent.pod_network and agent.dns_upstream == "192.168.121.1"


def test_units_supervise_like_k3s():
    by_path = {f.path: f for f in render.render(AGENT, None) + render.render(CP, None)}
    agent = parse_unit(by_path["/etc/systemd/system/skiff-agent.service"].content)
    cp = parse_unit(by_path["/etc/systemd/system/skiff-controlplane.service"].content)
    for unit in (agent, cp):
        assert unit["Service"]["Restart"] == ["always"]
        assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert agent["Service"]["KillMode"] == ["process"]   # pods survive an agent restart
    assert agent["Service"]["EnvironmentFile"] == ["-/etc/skiff/agent.env"]
    assert "KillMode" not in cp["Service"]
    for secret in ("/etc/skiff/agent.env", "/etc/skiff/raft-password", "/etc/skiff/controlplane.env"):
        assert by_path[secret].mode == 0o600
    assert by_path["/etc/skiff/raft-password"].content.strip() == "p" * 48
    assert "p" * 48 not in by_path["/etc/systemd/system/skiff-controlplane.service"].content


def test_exec_spec_is_the_execstart_line(tmp_path):
    env = tmp_path / "agent.env"
    inp = dataclasses.replace(AGENT, source_dir="/src/skiff", code_version="v 1")
    files = {f.path: f for f in render.render(inp, None)}
    env.write_text(files["/etc/skiff/agent.env"].content)
    unit = parse_unit(files["/etc/systemd/system/skiff-agent.service"].content.replace(
        "/etc/skiff/agent.env", str(env)))
    argv, environ, cwd = exec_spec(unit)
    assert argv == ["/opt/skiff/venv/bin/python", "-m", "nodeagent.main", "--config", "/etc/skiff/agent.yaml"]
    assert environ["PYTHONPATH"] == "/src/skiff" and environ["SKIFF_CODE_VERSION"] == "v 1"
    assert cwd == "/var/lib/skiff/agent"


@pytest.mark.parametrize("change,needle", [
    ({"role": "worker"}, "--role"),
    ({"address": "192.168.56"}, "--address"),
    ({"address": "0.0.0.0", "controlplanes": (("cp1", "0.0.0.0"),)}, "0.0.0.0"),
    ({"name": "CP1"}, "--name"),
    ({"controlplanes": (("cp2", "192.168.56.12"),)}, "not in the list"),
    ({"controlplanes": (("cp1", "192.168.56.99"),)}, "differs from --address"),
    ({"raft_password": "short"}, "at least 16"),
    ({"python": "python3"}, "--python"),
    ({"network_backend": "flannel"}, "--network"),
])
def test_bad_inputs_are_refused_naming_the_option(change, needle):
    with pytest.raises(render.InputError, match=needle):
        render.render(dataclasses.replace(CP, **change), None)


def test_os_path_layout_is_fixed():
    # /etc/skiff and /var/lib/skiff are a contract with the docs and the Vagrantfile.
    assert render.ETC == "/etc/skiff" and render.STATE == "/var/lib/skiff"
    assert os.path.basename(render.UNIT_DIR) == "system"


@pytest.mark.parametrize("current,want_keys,same", [
    (None, {}, False),
    (('{"log-driver": "local"}', 0o600), {"log-driver": "local"}, False),
    (("not json", 0o644), {}, False),
    (('{"bridge": "none", "iptables": false, "ip-masq": false, "ip-forward": false, "x": 1}\n', 0o644),
     {"x": 1}, True),
])
def test_docker_config_merges_the_engine_settings(current, want_keys, same):
    import json
    f = render.docker_config(current)
    doc = json.loads(f.content)
    assert {k: doc[k] for k in render.DOCKER_SETTINGS} == render.DOCKER_SETTINGS
    assert {k: v for k, v in doc.items() if k not in render.DOCKER_SETTINGS} == want_keys
    assert (f.content == current[0]) == same if current else True
    assert f.mode == (current[1] if current else 0o644)


def test_docker_config_change_restarts_docker_then_the_agent():
    m = installed(AGENT)
    files = dict(m.files)
    files[render.DOCKER_CONFIG] = ('{"iptables": true}\n', 0o644)
    p = do_plan(AGENT, dataclasses.replace(m, files=files))
    assert written(p) == [render.DOCKER_CONFIG]
    assert p.restart == [render.DOCKER_UNIT]     # the agent's own inputs did not change


# ------------------------------------------------------------------ TLS (issue 10)

def test_rerun_reissues_no_certificate():
    """Inputs rebuilt from what the first run installed keep the certificate byte for byte."""
    files = {f.path: f for f in render.render(CP, (HOSTS, 0o644))}
    current = (files["/etc/skiff/pki/cp1.crt"].content.encode(), files["/etc/skiff/pki/cp1.key"].content.encode())
    again = tls_inputs("cp1", "192.168.56.11", current=current)
    assert (again.serving_cert, again.serving_key) == current
    p = do_plan(again, installed(CP))
    assert p.noop, p.describe()


@pytest.mark.parametrize("who,new_address,want_cert_writes", [
    # cp3 moved: cp3's certificate is re-issued there; on cp1 only the peer list changes.
    ("cp3", "192.168.56.14", ["/etc/skiff/pki/cp3.crt", "/etc/skiff/pki/cp3.key"]),
    ("cp1", "192.168.56.14", []),
])
def test_changed_address_reissues_exactly_that_replicas_certificate(who, new_address, want_cert_writes):
    moved = CPS[:2] + (("cp3", new_address),)
    addr = dict(CPS)[who]
    before = tls_inputs(who, addr)
    machine = installed(before)
    current = (before.serving_cert, before.serving_key)
    after = tls_inputs(who, new_address if who == "cp3" else addr, current=current, controlplanes=moved)
    p = do_plan(after, machine)
    certs_written = [w for w in written(p) if w.startswith("/etc/skiff/pki/")]
    assert certs_written == want_cert_writes
    assert "/etc/skiff/pki/ca.crt" not in written(p) and "/etc/skiff/pki/ca.key" not in written(p)
    assert p.restart == [CP_UNIT]
    if want_cert_writes:
        ips, _ = cluster.cert_sans(after.serving_cert)
        assert ips == {new_address, "127.0.0.1", "10.96.0.1"}


@pytest.mark.parametrize("what,current,now,want", [
    ("fits", "same", None, ""),
    ("expired", "same", datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=400), "expired"),
    ("another CA", "foreign", None, "not issued by the cluster CA"),
    ("other key", "otherkey", None, "key does not match"),
    ("hostname changed", "otherhost", None, "other addresses"),
])
def test_certificate_reuse_rules(what, current, now, want):
    cert, key, _ = cluster.replica_cert(MATERIAL, "cp1", "192.168.56.11", "cp1", None)
    if current == "foreign":
        other = cluster.ensure(tempfile.mkdtemp(prefix="skiff-test-install-"))
        cert, key, _ = cluster.replica_cert(other, "cp1", "192.168.56.11", "cp1", None)
    elif current == "otherkey":
        key = certs.new_key_pem()
    hostname = "cp1-renamed" if current == "otherhost" else "cp1"
    ident = cluster.replica_sans("cp1", "192.168.56.11", hostname)
    assert cluster.cert_fits(cert, key, MATERIAL.ca_crt, ident, now) == want, what
    new_cert, _, why = cluster.replica_cert(MATERIAL, "cp1", "192.168.56.11", hostname, (cert, key), now=now)
    assert why == want and (new_cert == cert) == (not want)


def test_tls_configs_load_with_the_daemons_loaders(tmp_path):
    files = {f.path: f for f in render.render(CP, (HOSTS, 0o644))}
    root = tmp_path / "root"
    for f in files.values():
        p = root / f.path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f.content)
    text = files["/etc/skiff/controlplane.yaml"].content.replace("/etc/skiff", str(root / "etc/skiff"))
    (tmp_path / "cp.yaml").write_text(text)
    cfg = cpconfig.load(str(tmp_path / "cp.yaml"))
    assert cfg.tls.join_address == "192.168.56.11:7300"
    assert cfg.tls.ca_key_file.endswith("/etc/skiff/pki/ca.key")
    assert cfg.encryption_config_file.endswith("/etc/skiff/encryption-config.yaml")
    assert cfg.service_accounts.key_file.endswith("/etc/skiff/sa.key")
    for secret in ("pki/ca.key", "pki/cp1.key", "encryption-config.yaml", "sa.key", "admin.yaml"):
        assert files[f"/etc/skiff/{secret}"].mode == 0o600, secret
    assert files["/etc/skiff/pki/ca.crt"].content.encode() == MATERIAL.ca_crt
    # The serving certificate: the replica's identity, SANs its address, hostname, 127.0.0.1.
    crt = files["/etc/skiff/pki/cp1.crt"].content.encode()
    assert certs.subject(crt) == ("skiff:controlplane:cp1", ("skiff:controlplane", "system:masters"))
    ips, dns = cluster.cert_sans(crt)
    assert ips == {"192.168.56.11", "127.0.0.1", "10.96.0.1"} and {"cp1", "localhost"} <= dns
    assert "kubernetes.default.svc" in dns      # how pods reach it (the Service default/kubernetes)

    agent_files = {f.path: f for f in render.render(AGENT, None)}
    agent_yaml = agent_files["/etc/skiff/agent.yaml"]
    assert agent_yaml.mode == 0o600          # it holds the join token
    (tmp_path / "agent.yaml").write_text(agent_yaml.content)
    agent = agentconfig.load(str(tmp_path / "agent.yaml"))
    assert agent.tls.join_token == TOKEN
    assert agent.tls.join_servers == ("192.168.56.11:7300", "192.168.56.12:7300", "192.168.56.13:7300")
    assert agent.tls.cert_file == "/etc/skiff/pki/node1.crt"
    assert "SKIFF_JOIN_TOKEN" not in agent_files["/etc/skiff/agent.env"].content


def test_admin_config_is_a_tls_context_with_the_admin_certificate():
    admin = {f.path: f for f in render.render(CP, None)}["/etc/skiff/admin.yaml"].content
    # Every replica renders the same admin config (the join directory's copy is compared, not rewritten).
    assert render.admin_config(tls_inputs("cp2", "192.168.56.12")) == admin
    doc = yaml.safe_load(admin)
    ctx = clientconfig.current(doc, "admin.yaml")
    assert ctx["servers"] == ["192.168.56.11:7100", "192.168.56.12:7100", "192.168.56.13:7100"]
    pem = clientconfig.context_pem(ctx, "admin.yaml")
    assert pem["ca"] == MATERIAL.ca_crt and certs.issued_by(pem["cert"], pem["ca"])
    assert certs.subject(pem["cert"]) == ("skiff:admin", ("system:masters",))
    assert certs.key_matches(pem["cert"], pem["key"])


def test_cluster_secrets_are_created_once(tmp_path):
    a = cluster.ensure(str(tmp_path))
    b = cluster.ensure(str(tmp_path))
    assert a == b
    assert os.stat(tmp_path / "controlplane").st_mode & 0o777 == 0o700
    for p in ("ca/ca.key", "admin/admin.key", "encryption-config.yaml", "sa.key"):
        assert os.stat(tmp_path / "controlplane" / p).st_mode & 0o777 == 0o600, p
    assert certs.subject(a.ca_crt)[0] == certs.CA_COMMON_NAME


def test_agent_token_must_be_a_join_token():
    with pytest.raises(render.InputError, match="--join-token"):
        render.render(dataclasses.replace(AGENT, join_token="SKIFF-1-x-y"), None)


def test_a_joined_agent_keeps_its_token(tmp_path, monkeypatch):
    """A newer token in the join directory must not rewrite a joined agent's config (and
    restart it); an agent not joined yet takes --join-token, else the join directory's."""
    from skiff.install import main as mainmod
    monkeypatch.setattr(render, "ETC", str(tmp_path / "etc"))
    monkeypatch.setattr(render, "PKI", str(tmp_path / "etc" / "pki"))
    join_dir = tmp_path / "join"
    join_dir.mkdir()
    newer = TOKEN[:-1] + "z"
    (join_dir / "join-token").write_text(newer + "\n")
    args = mainmod.build_parser().parse_args(["--role", "agent", "--name", "node1", "--address", "192.168.56.21",
                                              "--controlplanes", "cp1=192.168.56.11", "--dry-run"])
    assert mainmod.agent_token(args, CPS, str(join_dir), print) == newer
    args.join_token = TOKEN
    assert mainmod.agent_token(args, CPS, str(join_dir), print) == TOKEN
    (tmp_path / "etc" / "pki").mkdir(parents=True)
    (tmp_path / "etc" / "agent.yaml").write_text(render._yaml(render.agent_doc(AGENT)))
    (tmp_path / "etc" / "pki" / "node1.crt").write_text("joined")
    args.join_token = ""
    assert mainmod.agent_token(args, CPS, str(join_dir), print) == TOKEN
