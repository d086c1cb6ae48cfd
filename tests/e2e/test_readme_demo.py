"""The README's main command, run as written (with its own lab dir and ports)."""

import os
import subprocess

from tests.e2e.conftest import Cli
from tests.helpers import ROOT, free_port_block, remove, temp_dir


def test_lab_demo_script_runs_and_heals():
    root = temp_dir("demo")
    base = free_port_block(6)
    env = dict(os.environ, SKIFF_LAB_DIR=os.path.join(root, "lab"),
               SKIFF_CONFIG=os.path.join(root, "config"), SKIFF_API_PORT=str(base),
               SKIFF_RAFT_PORT=str(base + 3))
    cli = Cli(env["SKIFF_LAB_DIR"], env["SKIFF_CONFIG"])
    try:
        r = subprocess.run(["bash", os.path.join(ROOT, "deploy", "lab-demo.sh")], env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert "deployment.apps/web created" in r.stdout
        assert "killed control-plane replica" in r.stdout
        assert "configmap/after-kill-5 created" in r.stdout
        status = cli.out("cluster", "status")
        assert status.count(" yes") == 3, status
        assert "after-kill-5" in cli.out("get", "cm", "-n", "demo")
    finally:
        cli.run("lab", "down", check=False)
        remove(root)
