"""python -m skiff.install: put skiff's configs, units and kernel settings on this machine
and (re)start what changed. deploy/install.sh installs the packages and skiff itself,
then calls this; it can be run alone on a machine that has them.

    python -m skiff.install --role controlplane --name cp1 --address 192.168.56.11 \\
        --controlplanes cp1=192.168.56.11,cp2=192.168.56.12,cp3=192.168.56.13 \\
        [--join-dir DIR] [--python /opt/skiff/venv/bin/python] [--network host-gw|vxlan] ...
    python -m skiff.install --role agent --name node1 --address 192.168.56.21 \\
        --controlplanes cp1=192.168.56.11,... [--join-dir DIR] [--wait-s 900]

TLS (issue 10): a control plane takes the cluster's CA, encryption config, ServiceAccount
key and admin certificate from <join-dir>/controlplane/ (the first replica creates them),
gets its own serving certificate, and once the API answers publishes a join token in
<join-dir>/join-token; an agent waits for that token (or takes --join-token) and joins with it.

Idempotent: a second run with the same inputs writes no file and restarts nothing
(it prints "installer: nothing to do"); a changed input rewrites exactly the files it
appears in and restarts the services that read them. --dry-run prints the plan only.
"""

import argparse
import ipaddress
import os
import socket
import sys

import yaml

from skiff.install import apply, cluster, join, plan as planmod, render

DIRS = {"controlplane": [(render.ETC, 0o755), (render.PKI, 0o755), (render.STATE, 0o755),
                         (f"{render.STATE}/controlplane", 0o700)],
        "agent": [(render.ETC, 0o755), (render.PKI, 0o755), (render.STATE, 0o755),
                  (f"{render.STATE}/agent", 0o700)]}
LOCAL_JOIN_DIR = f"{render.STATE}/join"


def parse_controlplanes(text: str) -> tuple:
    out = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        name, sep, addr = item.partition("=")
        if not sep or not name or not addr:
            raise render.InputError(f"--controlplanes: expected NAME=ADDRESS[,NAME=ADDRESS...], got {item!r}")
        out.append((name.strip(), addr.strip()))
    return tuple(out)


def resolver_upstream(path: str = "/etc/resolv.conf") -> str:
    """The machine's first non-loopback nameserver (the node DNS forwards other names
    there); "" if none (a stub resolver on 127.0.0.53 cannot be reached from pods)."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    try:
                        ip = ipaddress.ip_address(parts[1])
                    except ValueError:
                        continue
                    if ip.version == 4 and not ip.is_loopback:
                        return str(ip)
    except OSError:
        pass
    return ""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m skiff.install", description=__doc__.split("\n\n")[0])
    ap.add_argument("--role", required=True, choices=render.ROLES)
    ap.add_argument("--name", default=socket.gethostname().split(".")[0].lower(),
                    help="replica or node name (default: the short hostname)")
    ap.add_argument("--address", required=True,
                    help="this machine's advertise address (Raft, gRPC, InternalIP); must be bound here")
    ap.add_argument("--controlplanes", required=True, help="NAME=ADDRESS,... of every control-plane replica")
    ap.add_argument("--join-dir", default="", help="directory shared by the machines (raft-password, "
                    "controlplane/, admin.yaml, join-token); Vagrant's .vagrant-skiff "
                    f"(default: {LOCAL_JOIN_DIR}, copy it to the other machines)")
    ap.add_argument("--join-token", default="", help="agent: join with this token (`skiff token create` "
                    "on a control plane) instead of waiting for <join-dir>/join-token")
    ap.add_argument("--token-ttl", default="24h", help="control plane: lifetime of the join token it "
                    "publishes (kubeadm's default 24h; 0 = never expires); an expired one is replaced "
                    "by the next control-plane install")
    ap.add_argument("--token-wait-s", type=float, default=None,
                    help="control plane: how long to wait for the API before publishing the join token "
                         "(default 120 s for one replica, 30 s with more: without quorum yet, a later "
                         "replica's install publishes it)")
    ap.add_argument("--python", default=sys.executable, help="interpreter the units run (default: this one)")
    ap.add_argument("--source-dir", default="", help="run skiff from this checkout (PYTHONPATH in the units)")
    ap.add_argument("--code-version", default="", help="a digest of the installed skiff: a new one restarts the daemons")
    ap.add_argument("--network", default="host-gw", choices=["host-gw", "vxlan"])
    ap.add_argument("--cluster-cidr", default="10.244.0.0/16")
    ap.add_argument("--lb-pool", default="", help="LoadBalancer addresses FIRST-LAST (control plane)")
    ap.add_argument("--dns-upstream", default=None, help="the node DNS' upstream (default: from /etc/resolv.conf)")
    ap.add_argument("--docker-host", default="unix:///var/run/docker.sock")
    ap.add_argument("--init", default="auto", choices=["auto", "systemd", "runner"],
                    help="who runs the units (auto: systemd if it is PID 1, else the unit runner)")
    ap.add_argument("--kernel-modules", default="load", choices=["load", "skip"],
                    help="skip: write modules-load.d but load nothing (a shared kernel: containers, tests)")
    ap.add_argument("--wait-s", type=float, default=900.0,
                    help="agent: how long to wait for the control plane to answer")
    ap.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    return ap


def inputs_from(args, raft_password: str, token: str, **tls) -> render.Inputs:
    return render.Inputs(**tls,
        role=args.role, name=args.name, address=args.address, hostname=socket.gethostname(),
        controlplanes=parse_controlplanes(args.controlplanes), raft_password=raft_password,
        join_token=token, python=args.python, source_dir=args.source_dir, code_version=args.code_version,
        network_backend=args.network, cluster_cidr=args.cluster_cidr, load_balancer_pool=args.lb_pool,
        docker_host=args.docker_host,
        dns_upstream=resolver_upstream() if args.dns_upstream is None else args.dns_upstream)


def check_address(address: str) -> str:
    """"" if address is bound on this machine, else why not (the daemons refuse it too)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((address, 0))
        return ""
    except OSError as exc:
        return f"--address {address} is not an address of this machine ({exc.strerror})"


def agent_token(args, cps, join_dir: str, say) -> str:
    """The token the agent's config carries. An agent that has joined (its certificate is
    there) keeps the token its config has, so a newer token in the join directory does
    not rewrite the config and restart it; else --join-token; else it waits for
    <join-dir>/join-token and a replica's join port (order-independent bring-up)."""
    if os.path.exists(f"{render.PKI}/{args.name}.crt"):
        cur = apply.read_file(f"{render.ETC}/agent.yaml")
        try:
            old = ((yaml.safe_load(cur[0]) or {}).get("tls") or {}).get("joinToken", "") if cur else ""
        except yaml.YAMLError:
            old = ""
        if old:
            return old
    if args.join_token:
        return args.join_token
    if args.dry_run:
        return join.read_token(join_dir)
    servers = [f"{a}:{render.Inputs.join_port}" for _, a in cps]
    return join.wait_for_agent(join_dir, servers, args.wait_s, need_token=True, say=say,
                               check=join.port_answers)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    say = print
    try:
        cps = parse_controlplanes(args.controlplanes)
        why = check_address(args.address)
        if why:
            raise render.InputError(why)
        if args.address == "10.0.2.15":
            say("installer: WARNING --address 10.0.2.15 is Vagrant's NAT address, the same on every VM; "
                "give the private-network address")
        from skiff.pki import tokens
        try:
            ttl_s = tokens.parse_ttl(args.token_ttl)
        except tokens.TokenError as exc:
            raise render.InputError(str(exc)) from None
        token, tls = "", {}
        join_dir = args.join_dir or LOCAL_JOIN_DIR
        if args.role == "controlplane":
            pw = join.raft_password(join_dir, f"{render.ETC}/raft-password", create=True)
            material = cluster.ensure(join_dir)
            crt_path, key_path = f"{render.PKI}/{args.name}.crt", f"{render.PKI}/{args.name}.key"
            cur_crt, cur_key = apply.read_file(crt_path), apply.read_file(key_path)
            current = (cur_crt[0].encode(), cur_key[0].encode()) if cur_crt and cur_key else None
            cert, key, why = cluster.replica_cert(material, args.name, args.address,
                                                  socket.gethostname(), current)
            if why:
                say(f"installer: {'would issue' if args.dry_run else 'issued'} a certificate for "
                    f"{args.name} ({why})")
            tls = {"cluster": material, "serving_cert": cert, "serving_key": key}
        else:
            pw = ""
            token = agent_token(args, cps, join_dir, say)
        inp = inputs_from(args, pw, token, **tls)
        files = render.render(inp, apply.read_file("/etc/hosts"), apply.read_file(render.DOCKER_CONFIG))
    except (render.InputError, TimeoutError) as exc:
        print(f"installer: {exc}", file=sys.stderr)
        return 2
    mgr = apply.manager(args.init)
    services = render.services_of(inp, docker=isinstance(mgr, apply.Systemd))
    modules = render.MODULES if args.kernel_modules == "load" else ()
    machine = apply.survey(files, DIRS[args.role], services, render.SYSCTLS, modules, mgr)
    p = planmod.plan(files, DIRS[args.role], machine, services, render.SYSCTLS, modules,
                     manage_ntp=isinstance(mgr, apply.Systemd))
    if args.dry_run:
        for line in p.describe() or ["nothing to do"]:
            say(f"installer: would {line}" if line != "nothing to do" else "installer: nothing to do")
        return 0
    warnings = apply.run(p, mgr, render.SYSCTLS, say=say)
    if args.role == "controlplane":
        admin = render.admin_config(inp)
        if join.publish_admin_config(join_dir, admin):
            say(f"installer: wrote {os.path.join(join_dir, join.ADMIN_CONFIG)}")
        wait_s = args.token_wait_s if args.token_wait_s is not None else (120.0 if len(cps) == 1 else 30.0)
        join.ensure_token(join_dir, inp.api_addresses(), join.admin_credentials(admin),
                          ttl_s, wait_s, say=say)
    for w in warnings:
        say(f"installer: WARNING {w}")
    if not isinstance(mgr, apply.Systemd):
        say("installer: no systemd here: units run by the unit runner (python -m skiff.install.runner); "
            "time sync left to the host")
    if p.noop:
        say("installer: nothing to do (every file, setting and service already as wanted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
