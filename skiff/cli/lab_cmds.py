"""`skiff lab ...` and `skiff chaos ...`: the lab on this host and breaking it on purpose."""

import argparse
import concurrent.futures
import sys
import tempfile
import time

from skiff.cli.errors import CliError


def cmd_lab(args) -> int:
    from skiff.lab.lab import Lab, LabError
    if args.lab_cmd == "load":
        return cmd_load(args)
    lab = Lab(args.lab_dir)
    try:
        if args.lab_cmd == "up":
            if args.node_lease_duration is not None and args.node_lease_duration <= 0:
                raise CliError("lab: --node-lease-duration must be a positive number of seconds")
            lab.up(replicas=args.replicas, nodes=args.nodes, api_base_port=args.api_port,
                   raft_base_port=args.raft_port, prefix=args.prefix, subnet=args.subnet,
                   agents=False if args.no_agents else None, timeout_s=args.timeout,
                   network=args.network, node_lease_s=args.node_lease_duration)
        elif args.lab_cmd == "down":
            lab.down()
        else:
            print(lab.status())
    except LabError as exc:
        raise CliError(f"lab: {exc}") from None
    return 0


def cmd_load(args) -> int:
    """Stream docker-save archives to every node's agent through the control plane."""
    import shutil

    from skiff import client as clientmod
    from skiff.lab import loadimage

    try:
        client = clientmod.Client.from_config(args.server)
    except clientmod.ApiError as exc:
        raise CliError(exc.message) from None
    if not hasattr(client, "load_image"):
        raise CliError("this skiff has no Client.load_image(node, chunks) yet (the API's LoadImage "
                       "RPC, proxied to the node's agent)")
    try:
        nodes = args.node or sorted(n.metadata.name for n in client.list("node")[0])
    except clientmod.ApiError as exc:
        raise CliError(f"listing nodes: {exc.message}") from None
    if not nodes:
        raise CliError("no nodes registered (are the agents running? skiff get nodes)")
    tmp = tempfile.mkdtemp(prefix="skiff-load-")
    failed = False
    try:
        archives, warnings = loadimage.resolve(args.images, tmp)
        for w in warnings:
            print(f"skipping {w}", file=sys.stderr)
        failed = bool(warnings)
        if not archives:
            raise CliError("nothing to load")

        def send(node, archive):
            t = time.monotonic()
            resp = client.load_image(node, archive)
            return node, archive, list(resp.images), time.monotonic() - t

        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(nodes))) as pool:
            futures = [pool.submit(send, n, a) for a in archives for n in nodes]
            for fut in concurrent.futures.as_completed(futures):
                try:
                    node, archive, images, took = fut.result()
                except clientmod.ApiError as exc:
                    print(f"error: {exc.message}", file=sys.stderr)
                    failed = True
                    continue
                shown = ", ".join(images or archive.tags()) or "(untagged)"
                print(f"{node}: loaded {shown} from {archive.label} "
                      f"({archive.size / 1e6:.1f} MB in {took:.1f}s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        client.close()
    return 1 if failed else 0


def _node_cmd(lab, args):
    from skiff.lab.lab import LabError
    name = args.name
    try:
        if args.chaos_cmd == "kill-node":
            killed = lab.kill_node(name)
            print(f"killed node {name} (power cut): kill -9 of {len(killed)} processes "
                  f"(agent, dockerd, containerd, shims, containers); link down")
        elif args.chaos_cmd == "start-node":
            out = lab.start_node(name)
            agent = f", agent pid={out['agentPid']}" if "agentPid" in out else ""
            print(f"started node {name}: link up, engine pid={out['enginePid']} "
                  f"(docker {out['engineVersion']}){agent}")
        elif args.chaos_cmd == "kill-agent":
            killed = lab.kill_agent(name)
            if not killed:
                raise CliError(f"the agent of {name} is not running")
            print(f"killed the agent of {name} (kill -9)")
        elif args.chaos_cmd == "start-agent":
            print(f"started the agent of {name} pid={lab.start_agent(name)}")
    except LabError as exc:
        raise CliError(f"chaos: {exc}") from None


def cmd_chaos(args) -> int:
    from skiff.lab.lab import Lab
    lab = Lab(args.lab_dir)
    if args.chaos_cmd in ("kill-node", "start-node", "kill-agent", "start-agent"):
        _node_cmd(lab, args)
        return 0
    cp = lab.controlplane()
    if cp is None:
        raise CliError(f"no lab in {lab.lab_dir} (skiff lab up first)")
    if args.chaos_cmd == "kill-controlplane":
        name = args.name
        if name == "leader":
            try:
                name = cp.leader(timeout_s=5.0)
            except TimeoutError:
                raise CliError("no Raft leader to kill right now") from None
        if name not in cp.names:
            raise CliError(f"no control-plane replica {name!r} (have {', '.join(cp.names)})")
        if not cp.kill(name):
            raise CliError(f"{name} is not running")
        print(f"killed control-plane replica {name} (kill -9)")
    elif args.chaos_cmd == "start-controlplane":
        if args.name not in cp.names:
            raise CliError(f"no control-plane replica {args.name!r} (have {', '.join(cp.names)})")
        pid = cp.start(args.name)
        lab.record_pids(cp)
        print(f"started control-plane replica {args.name} pid={pid}")
    return 0


def add_parsers(sub, common) -> None:
    # skiff.lab.base, not skiff.lab.lab: building the parser must not import the lab's
    # builder (dnslib, pyroute2), which a `skiff` in a pod's image does not carry.
    from skiff.lab.base import DEFAULT_LAB_DIR
    from skiff.lab.plan import DEFAULT_PREFIX, DEFAULT_SUBNET
    lab = sub.add_parser("lab", help="a local lab cluster on this host")
    lsub = lab.add_subparsers(dest="lab_cmd", required=True)
    for name in ("up", "down", "status"):
        lp = lsub.add_parser(name)
        lp.add_argument("--lab-dir", default=DEFAULT_LAB_DIR)
        if name == "up":
            lp.add_argument("--nodes", type=int, default=3,
                            help="nodes (network namespaces with their own Docker engine and "
                                 "agent); 0 = only the control plane, on 127.0.0.1")
            lp.add_argument("--replicas", type=int, default=3, choices=(1, 3, 5))
            lp.add_argument("--api-port", type=int, default=7100,
                            help="API port (with --nodes 0: the first replica's)")
            lp.add_argument("--raft-port", type=int, default=7200,
                            help="Raft port (with --nodes 0: the first replica's)")
            lp.add_argument("--prefix", default=DEFAULT_PREFIX,
                            help="name prefix of the lab's namespaces and links (skiff[a-z0-9-]{0,5})")
            lp.add_argument("--subnet", default=DEFAULT_SUBNET,
                            help="the lab network (host .1, replicas .11+, nodes .21+, "
                                 "gateway: last address)")
            lp.add_argument("--network", choices=("host-gw", "vxlan"), default="host-gw",
                            help="pod network backend (nodes mode): host-gw routes or a VXLAN overlay")
            lp.add_argument("--no-agents", action="store_true",
                            help="nodes get their engines but no skiff-agent")
            lp.add_argument("--timeout", type=float, default=90.0,
                            help="seconds to wait for each phase")
            lp.add_argument("--node-lease-duration", type=int, default=None, metavar="S",
                            help="nodes mode: the nodes' Lease duration (renewed every quarter of it) "
                                 "and the grace period before a silent node is NotReady; default 5 s "
                                 "(fast failure detection), Kubernetes' 40 s")
        lp.set_defaults(func=cmd_lab)
    lp = lsub.add_parser("load", parents=[common],
                         help="load images into every node (through the agents)")
    lp.add_argument("images", nargs="+", metavar="IMAGE|ARCHIVE.tar",
                    help="a `docker save` archive, or an image of this host's Docker engine")
    lp.add_argument("--node", action="append", help="only this node (repeatable)")
    lp.add_argument("--lab-dir", default=DEFAULT_LAB_DIR, help=argparse.SUPPRESS)
    lp.set_defaults(func=cmd_lab)

    ch = sub.add_parser("chaos", help="break the lab on purpose")
    chsub = ch.add_subparsers(dest="chaos_cmd", required=True)
    for name, what, help_ in (
            ("kill-controlplane", "name", "kill -9 a replica (leader or NAME)"),
            ("start-controlplane", "name", "start a killed replica again"),
            ("kill-node", "name", "power cut: kill -9 a node's agent, engine and containers; link down"),
            ("start-node", "name", "power on: link up, engine, then agent"),
            ("kill-agent", "name", "kill -9 a node's agent only"),
            ("start-agent", "name", "start a node's agent again")):
        k = chsub.add_parser(name, help=help_)
        k.add_argument(what, metavar="NODE" if "node" in name or "agent" in name else "NAME")
        k.add_argument("--lab-dir", default=DEFAULT_LAB_DIR)
        k.set_defaults(func=cmd_chaos)

