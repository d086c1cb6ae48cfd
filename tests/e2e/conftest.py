"""The lab, driven only through the `skiff` command line, like a user."""

import contextlib
import os
import subprocess
import sys

import pytest

from tests.helpers import free_port_block, remove, temp_dir


def skiff_argv() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "skiff")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "skiff.cli.main"]


class Cli:
    """Runs `skiff ...` with this lab's config file and lab dir."""

    def __init__(self, lab_dir: str, config: str):
        self.lab_dir = lab_dir
        self.config = config
        self.env = dict(os.environ, SKIFF_CONFIG=config)
        self.env.pop("SKIFF_SERVER", None)

    def run(self, *args, input=None, check=True, timeout=60):
        argv = skiff_argv() + [str(a) for a in args]
        if args and args[0] in ("lab", "chaos"):
            argv += ["--lab-dir", self.lab_dir]
        r = subprocess.run(argv, input=input, capture_output=True, text=True, env=self.env,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"skiff {' '.join(map(str, args))} failed ({r.returncode}):\n"
                                 f"{r.stdout}\n{r.stderr}")
        return r

    def out(self, *args, **kw) -> str:
        return self.run(*args, **kw).stdout

    def popen(self, *args):
        return subprocess.Popen(skiff_argv() + [str(a) for a in args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env)


def lab_up(tag: str, *extra) -> Cli:
    base = free_port_block(6)
    root = temp_dir(tag)
    cli = Cli(os.path.join(root, "lab"), os.path.join(root, "config"))
    try:
        cli.run("lab", "up", "--nodes", "0", "--api-port", base, "--raft-port", base + 3, *extra,
                timeout=120)
    except Exception:
        lab_down(cli)
        raise
    return cli


def lab_down(cli: Cli) -> None:
    cli.run("lab", "down", check=False, timeout=120)
    remove(os.path.dirname(cli.lab_dir))


@pytest.fixture(scope="module")
def lab(request):
    cli = lab_up(request.module.__name__.rsplit(".", 1)[-1])
    yield cli
    if request.session.testsfailed:
        dump_lab_logs(cli)
    lab_down(cli)




def lab_up_nodes(tag: str, nodes: int = 3, *extra, network: str = "") -> Cli:
    """A lab with N nodes (namespaces, engines, agents) and 3 replicas on the lab network;
    network: the pod network backend (host-gw | vxlan; "" = the lab's default, host-gw)."""
    if network:
        extra = extra + ("--network", network)
    from skiff.lab.netlab import pick_free_prefix_and_subnet as pick_prefix_and_subnet
    root = temp_dir(tag)
    cli = Cli(os.path.join(root, "lab"), os.path.join(root, "config"))
    prefix, subnet = pick_prefix_and_subnet()
    try:
        cli.run("lab", "up", "--nodes", nodes, "--prefix", prefix, "--subnet", subnet, *extra,
                timeout=300)
    except Exception:
        dump_lab_logs(cli)
        lab_down(cli)
        raise
    return cli


@contextlib.contextmanager
def nodes_lab(request, tag: str, nodes: int = 3, network: str = ""):
    """A test module's nodes lab (lab_up_nodes), with cli.backend and cli.plan set: its
    logs are printed when the setup inside the with-block or any test failed, and it is
    always taken down. In a module fixture: `with nodes_lab(request, ...) as cli: yield cli`."""
    from skiff.lab.lab import Lab
    cli = lab_up_nodes(tag, nodes, network=network)
    cli.backend = network
    cli.plan = Lab(cli.lab_dir).plan()
    failed = False
    try:
        yield cli
    except BaseException:
        failed = True
        raise
    finally:
        if failed or request.session.testsfailed:
            dump_lab_logs(cli)
        lab_down(cli)


def dump_lab_logs(cli: Cli) -> None:
    logs = os.path.join(cli.lab_dir, "logs")
    for name in sorted(os.listdir(logs)) if os.path.isdir(logs) else []:
        with open(os.path.join(logs, name), errors="replace") as f:
            print(f"----- {name} -----\n{f.read()[-4000:]}")


def node_docker(cli: Cli, node: str):
    """The node's own engine (for checks a user could make with `docker -H` on that VM)."""
    import docker
    from skiff.lab.lab import Lab
    lab = Lab(cli.lab_dir)
    plan = lab.plan()
    return docker.DockerClient(base_url=plan.node_paths(node).docker_host, timeout=30)
