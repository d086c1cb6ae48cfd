"""skiff-agent --config FILE: the node agent.

Logs key=value lines to stderr. SIGTERM/SIGINT stop the agent cleanly without
stopping pods: containers keep running and the next agent adopts them.
"""

import argparse
import logging
import signal
import sys
import threading

from nodeagent import config as configmod
from skiff import advertise, grpcwait


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="skiff-agent", description="skiff node agent")
    parser.add_argument("--config", required=True, help="agent config file (YAML)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, args.log_level),
                        format="time=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    try:
        cfg = configmod.load(args.config)
    except configmod.ConfigError as exc:
        print(f"skiff-agent: {exc}", file=sys.stderr)
        return 2

    errors, warnings = advertise.check([("address", cfg.address), ("listen", cfg.listen)],
                                       listen_only=("listen",))
    for w in warnings:
        logging.getLogger("skiff.agent").warning("event=advertise_address_warning %s", w)
    if errors:
        for e in errors:
            print(f"skiff-agent: {args.config}: {e}", file=sys.stderr)
        return 2

    from nodeagent.agent import Agent  # after the config is known to be good
    from nodeagent.join import JoinError, ensure_joined
    try:
        ensure_joined(cfg)    # a tls.joinToken and no certificate yet: get one (retries until answered)
    except JoinError as exc:
        print(f"skiff-agent: {exc}", file=sys.stderr)
        return 2

    grpcwait.relax_blocking_waits()   # idle informers: one wake a second, not ten (skiff/grpcwait.py)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent = Agent(cfg)
    starter = threading.Thread(target=lambda: _start(agent, stop), name="agent-start", daemon=True)
    starter.start()
    while not stop.wait(1.0):
        pass
    logging.getLogger("skiff.agent").info("event=agent_stopping node=%s", cfg.node_name)
    agent.stop()
    return 1 if getattr(agent, "failed", False) else 0


def _start(agent, stop):
    try:
        agent.start()
    except Exception:  # noqa: BLE001 - fatal: log and exit non-zero
        logging.getLogger("skiff.agent").exception("event=agent_start_failed")
        stop.set()
        agent.failed = True


if __name__ == "__main__":
    sys.exit(main())
