"""The lab survives its own tooling crashing: `skiff lab up` killed with kill -9 half-way
leaves things that `skiff lab down` removes completely, and a new `up` over the
remains of a crashed one works. Plus the control-plane-only lab (--nodes 0) stays
what it was: processes on 127.0.0.1, no namespaces."""

import os
import signal
import subprocess

from tests.e2e.conftest import lab_down, lab_up, skiff_argv
from tests.e2e.test_lab import NOTHING, NodeLab, engine_answers
from tests.helpers import wait_until


def crash_up_midway(nl: NodeLab) -> None:
    """Run `skiff lab up` and kill -9 it as soon as the first node's engine answers."""
    argv = skiff_argv() + nl.up_argv("--no-agents") + ["--lab-dir", nl.lab_dir]
    proc = subprocess.Popen(argv, env=nl.cli.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: engine_answers(nl.socket("node1")), 60, "node1's engine to answer")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def test_up_killed_midway_is_cleaned_by_down_and_by_a_new_up():
    nl = NodeLab("labcrash", nodes=2)
    try:
        crash_up_midway(nl)
        left = nl.leftovers()
        assert left["netns"] and left["processes"] and left["dirs"], left
        assert "INCOMPLETE" in nl.cli.out("lab", "status")
        nl.down(check=True)
        assert nl.leftovers() == NOTHING

        crash_up_midway(nl)
        assert nl.leftovers()["processes"]
        out = nl.up().stdout                     # straight over the remains of the crash
        assert "cleaning up the remains" in out and "skiff lab is up" in out
        assert engine_answers(nl.socket("node1")) and engine_answers(nl.socket("node2"))
        assert nl.cli.out("cluster", "status").count(" yes") == 3
        nl.down(check=True)
        assert nl.leftovers() == NOTHING
    finally:
        if nl.leftovers() != NOTHING:
            nl.dump_logs()
        nl.close()


def test_loopback_lab_has_no_namespaces_and_refuses_node_chaos():
    cli = lab_up("labloop")
    try:
        import json
        with open(os.path.join(cli.lab_dir, "lab.json")) as f:
            state = json.load(f)
        assert state["mode"] == "loopback" and "made" not in state and "plan" not in state
        status = cli.out("lab", "status")
        assert status.count("127.0.0.1:") == 3 and status.count("running") == 3
        r = cli.run("chaos", "kill-node", "node1", check=False)
        assert r.returncode == 1 and "no nodes" in r.stderr
        for pid in state["controlplane"]["pids"].values():
            assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    finally:
        lab_down(cli)
    assert not os.path.exists(cli.lab_dir)


def test_removal_never_goes_through_a_mount():
    """What `down` relies on after a crash: a mount left under the lab (a killed engine's
    overlay, a bind mount) is never deleted through."""
    from skiff.lab import mounts
    from tests.helpers import remove, temp_dir
    root = temp_dir("mounts")
    keep, tree = os.path.join(root, "keep"), os.path.join(root, "tree")
    mnt = os.path.join(tree, "a", "b")
    os.makedirs(keep)
    os.makedirs(mnt)
    for path in (os.path.join(keep, "precious"), os.path.join(tree, "file")):
        with open(path, "w") as f:
            f.write("x")
    subprocess.run(["mount", "--bind", keep, mnt], check=True)
    try:
        assert mounts.mounts_under(tree) == [mnt]
        assert mounts.rmtree_one_fs(tree) == [mnt]       # refused to enter the mount
        assert os.path.exists(os.path.join(keep, "precious"))
        assert not os.path.exists(os.path.join(tree, "file"))
        assert mounts.unmount_under(tree) == []
        assert mounts.rmtree_one_fs(tree) == [] and not os.path.exists(tree)
        assert os.path.exists(os.path.join(keep, "precious"))
    finally:
        mounts.unmount_under(tree)
        remove(root)
