"""`skiff lab ...` and `skiff chaos ...`: the lab on this host and breaking it on purpose."""

from skiff.cli.errors import CliError


def cmd_lab(args) -> int:
    from skiff.lab.lab import Lab, LabError
    lab = Lab(args.lab_dir)
    try:
        if args.lab_cmd == "up":
            lab.up(replicas=args.replicas, nodes=args.nodes, api_base_port=args.api_port,
                   raft_base_port=args.raft_port)
        elif args.lab_cmd == "down":
            lab.down()
        else:
            print(lab.status())
    except LabError as exc:
        raise CliError(f"lab: {exc}") from None
    return 0


def cmd_chaos(args) -> int:
    from skiff.lab.lab import Lab
    lab = Lab(args.lab_dir)
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
    from skiff.lab.lab import DEFAULT_LAB_DIR
    lab = sub.add_parser("lab", help="a local lab cluster on this host")
    lsub = lab.add_subparsers(dest="lab_cmd", required=True)
    for name in ("up", "down", "status"):
        lp = lsub.add_parser(name)
        lp.add_argument("--lab-dir", default=DEFAULT_LAB_DIR)
        if name == "up":
            lp.add_argument("--nodes", type=int, default=0)
            lp.add_argument("--replicas", type=int, default=3, choices=(1, 3, 5))
            lp.add_argument("--api-port", type=int, default=7100, help="first replica's API port")
            lp.add_argument("--raft-port", type=int, default=7200, help="first replica's Raft port")
        lp.set_defaults(func=cmd_lab)

    ch = sub.add_parser("chaos", help="break the lab on purpose")
    chsub = ch.add_subparsers(dest="chaos_cmd", required=True)
    k = chsub.add_parser("kill-controlplane", help="kill -9 a replica (leader or NAME)")
    k.add_argument("name")
    k.add_argument("--lab-dir", default=DEFAULT_LAB_DIR)
    k.set_defaults(func=cmd_chaos)
    k = chsub.add_parser("start-controlplane", help="start a killed replica again")
    k.add_argument("name")
    k.add_argument("--lab-dir", default=DEFAULT_LAB_DIR)
    k.set_defaults(func=cmd_chaos)
