"""skiff-controlplane: one replica of the control plane (API server + Raft store).

What runs periodically in a replica, each with its period and idle cost in its own
docstring: the Raft tick (controlplane/store/raft.py: every heartbeat, 100 ms, and
every message), the open watches' waits (controlplane/apiserver/service.py: 5 s, and
gRPC's own waits in 1 s slices: skiff/grpcwait.py), the
leader supervisor (controlplane/leader.py: woken by Raft state changes, else every
1 s), the renewal of its own certificate (skiff/pki/renew.py: about once per certificate
lifetime), and, while this replica leads, the bootstrapper and the controllers
(controlplane/controllers/manager.py).
"""

import os

# PySyncObj forks for log compaction; the child never touches gRPC, so gRPC's
# fork handlers (and their log noise) are not wanted.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import argparse  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

from controlplane import config as cfgmod  # noqa: E402
from controlplane.apiserver.service import serve
from controlplane.bootstrap import Bootstrapper
from controlplane.controllers.manager import ControllerManager
from controlplane.leader import LeaderSupervisor
from controlplane.pki import start_renewal
from controlplane.store.raft import die_with_parent_on_fork
from controlplane.store.store import Store
from skiff import advertise, grpcwait
from skiff.reconcile import Group


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="skiff-controlplane",
                                     description="Run one skiff control-plane replica.")
    parser.add_argument("--config", required=True, help="replica config file (YAML)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    try:
        cfg = cfgmod.load(args.config)
    except (cfgmod.ConfigError, OSError) as exc:
        print(f"skiff-controlplane: {exc}", file=sys.stderr)
        return 2
    log = logging.getLogger("skiff.controlplane")
    if not _addresses_ok(cfg, args.config, log):
        return 2
    die_with_parent_on_fork()
    grpcwait.relax_blocking_waits()   # idle watches: one wake a second, not ten (skiff/grpcwait.py)
    store = Store(cfg)
    server = serve(store, cfg)
    renewer = start_renewal(cfg)

    def leader_only():
        """One term's loops: the built-ins always; scheduler, controllers, node lifecycle
        and GC unless the config turns them off (controllers.enabled)."""
        manager = ControllerManager(cfg, store.is_leader) if cfg.controllers.enabled else None
        return Group(Bootstrapper(store, cfg), manager)

    leader_loops = LeaderSupervisor(store, leader_only).start()
    if cfg.encryption is None:
        log.warning("event=secrets_not_encrypted reason=no_encryptionConfigFile")
    else:
        log.info("event=secrets_encryption file=%s write=%s", cfg.encryption_config_file,
                 cfg.encryption.describe_write().replace(" ", "_"))
    log.info("event=started name=%s api=%s raft=%s peers=%s", cfg.name, cfg.api_address,
             cfg.raft_address, ",".join(p.name for p in cfg.peers))
    stopping = threading.Event()

    def _stop(signum, _frame):
        log.info("event=stopping signal=%s", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stopping.wait()
    leader_loops.stop()
    if renewer:
        renewer.stop()
    server.stop(grace=1.0).wait()
    store.close()
    return 0


def _addresses_ok(cfg, path, log) -> bool:
    """Refuse addresses not bound here, warn on Vagrant's NAT one (skiff/advertise.py)."""
    errors, warnings = advertise.check([("raftAddress", cfg.raft_address), ("apiAddress", cfg.api_address),
                                        ("advertiseApiAddress", cfg.advertise_api_address)],
                                       listen_only=("apiAddress",))
    for w in warnings:
        log.warning("event=advertise_address_warning %s", w)
    for e in errors:
        print(f"skiff-controlplane: {path}: {e}", file=sys.stderr)
    return not errors


if __name__ == "__main__":
    sys.exit(main())
