"""The README's main command, run as written (with its own lab dir, prefix and subnet)."""

import os
import re
import subprocess

from tests.e2e.conftest import Cli, dump_lab_logs
from skiff.lab.netlab import pick_free_prefix_and_subnet as pick_prefix_and_subnet
from tests.helpers import ROOT, remove, temp_dir


def test_lab_demo_script_runs_the_workload_and_heals():
    root = temp_dir("demo")
    prefix, subnet = pick_prefix_and_subnet()
    env = dict(os.environ, SKIFF_LAB_DIR=os.path.join(root, "lab"),
               SKIFF_CONFIG=os.path.join(root, "config"), SKIFF_LAB_PREFIX=prefix,
               SKIFF_LAB_SUBNET=subnet)
    cli = Cli(env["SKIFF_LAB_DIR"], env["SKIFF_CONFIG"])
    try:
        r = subprocess.run(["bash", os.path.join(ROOT, "deploy", "lab-demo.sh")], env=env,
                           capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            dump_lab_logs(cli)
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-3000:]
        assert "deployment.apps/web created" in r.stdout
        assert "GREETING=hello from skiff" in r.stdout
        assert "skiff demo" in r.stdout  # the page httpd served from the configMap volume
        # 9 calls to http://web/pod (DNS name -> ClusterIP -> iptables) from one pod: each line
        # of `uniq -c` is "<count> <pod name>"; every answer came from a web pod.
        answers = re.findall(r"^\s+(\d+) (web-\S+)$", r.stdout, re.MULTILINE)
        assert answers and sum(int(n) for n, _ in answers) == 9, r.stdout[-3000:]
        assert "killed control-plane replica" in r.stdout
        status = cli.out("cluster", "status")
        assert status.count(" yes") == 3, status
        nodes = cli.out("get", "nodes")
        assert nodes.count(" Ready ") == 3, nodes
        pods = cli.out("get", "po", "-n", "demo")
        assert pods.count("Running") == 3, pods
    finally:
        cli.run("lab", "down", check=False, timeout=300)
        remove(root)
