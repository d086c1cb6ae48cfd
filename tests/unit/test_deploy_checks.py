"""CI's static checks of what deploys skiff (these machines boot no VMs):

- `vagrant validate` on the top-level Vagrantfile (Debian's vagrant; --ignore-provider
  since no provider is installed here; rsync as the synced-folder type because the NFS
  default makes vagrant probe the host's nfsd), for 2, 0 and 5 workers, and a broken
  copy must fail (the check can fail);
- `shellcheck -S error` on every *.sh of the repository;
- `systemd-analyze verify` on the units the installer renders, any diagnostic a failure
  (it works without systemd as PID 1; ExecStart's binary must exist, so the units are
  rendered with this interpreter's path).

The tools come from deploy/dev-setup.sh; missing ones skip the check outside CI and
fail it in CI (CI=true).
"""

import os
import shutil
import subprocess
import sys

import pytest

from skiff.install import render

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def need(tool):
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is not installed (deploy/dev-setup.sh installs it)")
        pytest.skip(f"{tool} is not installed (deploy/dev-setup.sh installs it)")
    return path


def _vagrant_validate(directory, env_extra):
    env = dict(os.environ, VAGRANT_HOME=os.path.join(directory, ".vagrant-home"),
               VAGRANT_CHECKPOINT_DISABLE="1", SKIFF_SYNC_TYPE="rsync", **env_extra)
    return subprocess.run([need("vagrant"), "validate", "--ignore-provider"], cwd=directory, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def vagrant_dir(tmp_path):
    shutil.copy(os.path.join(ROOT, "Vagrantfile"), tmp_path / "Vagrantfile")
    (tmp_path / "deploy").mkdir()
    shutil.copy(os.path.join(ROOT, "deploy", "vagrant-provision.sh"), tmp_path / "deploy")
    return tmp_path


@pytest.mark.parametrize("workers", ["2", "0"])
def test_vagrant_validate(vagrant_dir, workers):
    r = _vagrant_validate(str(vagrant_dir), {"SKIFF_WORKERS": workers})
    assert r.returncode == 0 and "validated successfully" in r.stdout, r.stdout + r.stderr
    machines = [line for line in r.stdout.splitlines() if "Ignoring provider config" in line]
    assert len(machines) == 3 + int(workers)


def test_vagrant_validate_catches_a_broken_vagrantfile(vagrant_dir):
    path = vagrant_dir / "Vagrantfile"
    path.write_text(path.read_text().replace("m.vm.hostname = name", "m.vm.hostname = name\n      m.vm.hostnme = 1"))
    r = _vagrant_validate(str(vagrant_dir), {})
    assert r.returncode != 0 and "hostnme" in r.stdout + r.stderr


def shell_scripts():
    out = subprocess.run(["git", "ls-files", "*.sh"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    found = set(out)
    for dirpath, dirnames, names in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("__pycache__", "build")]
        found |= {os.path.relpath(os.path.join(dirpath, n), ROOT) for n in names if n.endswith(".sh")}
    return sorted(found)


def test_shellcheck_every_script():
    scripts = shell_scripts()
    assert "deploy/install.sh" in scripts and "deploy/vagrant-provision.sh" in scripts
    r = subprocess.run([need("shellcheck"), "-S", "error", *scripts], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


CPS = (("cp1", "192.168.56.11"), ("cp2", "192.168.56.12"), ("cp3", "192.168.56.13"))


@pytest.mark.parametrize("role", render.ROLES)
def test_systemd_analyze_verify_rendered_units(tmp_path, role):
    tool = need("systemd-analyze")
    inp = render.Inputs(role=role, name="cp1" if role == "controlplane" else "node1",
                        address="192.168.56.11" if role == "controlplane" else "192.168.56.21",
                        hostname="x", controlplanes=CPS, raft_password="p" * 40,
                        python=os.path.realpath(sys.executable), source_dir=ROOT)
    units = [f for f in render.render(inp, None) if f.path.endswith(".service")]
    assert len(units) == 1
    path = tmp_path / os.path.basename(units[0].path)
    path.write_text(units[0].content)
    r = subprocess.run([tool, "verify", "--man=no", str(path)], capture_output=True, text=True,
                       env=dict(os.environ, SYSTEMD_LOG_LEVEL="notice"))
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr


def test_systemd_analyze_reports_a_bad_unit(tmp_path):
    """The check above can fail: a misspelt value is only a diagnostic (exit 0)."""
    tool = need("systemd-analyze")
    inp = render.Inputs(role="agent", name="node1", address="192.168.56.21", hostname="x",
                        controlplanes=CPS, python=os.path.realpath(sys.executable))
    unit = next(f for f in render.render(inp, None) if f.path.endswith(".service"))
    path = tmp_path / "skiff-agent.service"
    path.write_text(unit.content.replace("KillMode=process", "KillMode=proces"))
    r = subprocess.run([tool, "verify", "--man=no", str(path)], capture_output=True, text=True)
    assert "kill mode" in (r.stdout + r.stderr).lower()
