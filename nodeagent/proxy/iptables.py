"""The iptables commands the proxier runs (in the agent's network namespace = the node's).

Only three operations, all idempotent: read the current rules (iptables-save), apply a
rendered text atomically (iptables-restore --noflush: one transaction; chains of other
software untouched), and ensure a jump from a built-in chain (`-C` || `-I ... 1`).
"""

import subprocess

TIMEOUT_S = 30.0


class IptablesError(RuntimeError):
    pass


class Iptables:
    def __init__(self, netns_path: str = ""):
        # netns_path: run the commands in that namespace (tests); "" = this process's.
        self.netns_path = netns_path
        self._prefix = ["nsenter", f"--net={netns_path}"] if netns_path else []

    def _run(self, args, stdin=None, check=True):
        proc = subprocess.run(self._prefix + args, input=stdin, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
        if check and proc.returncode != 0:
            raise IptablesError(f"{' '.join(args[:4])}... exited {proc.returncode}: {proc.stderr.strip()[:500]}")
        return proc

    def save(self) -> str:
        return self._run(["iptables-save"]).stdout

    def restore(self, text: str) -> None:
        self._run(["iptables-restore", "-w", "5", "--noflush"], stdin=text)

    def ensure_jump(self, table: str, chain: str, spec: list) -> bool:
        """True when the rule had to be inserted."""
        if self._run(["iptables", "-w", "5", "-t", table, "-C", chain] + spec, check=False).returncode == 0:
            return False
        self._run(["iptables", "-w", "5", "-t", table, "-I", chain, "1"] + spec)
        return True
