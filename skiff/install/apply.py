"""The installer's side effects: reading the machine into a plan.Machine and running a
plan.Plan. Every file goes through write_file(), which compares before it writes.

Service managers: Systemd (systemctl, timedatectl) when systemd is PID 1
(/run/systemd/system exists, sd_booted(3)), else runner.Runner, which runs the units'
ExecStart lines itself.
"""

import os
import subprocess
import tempfile

from skiff.install import plan as planmod
from skiff.install.runner import Runner


def write_file(path: str, content: str, mode: int) -> bool:
    """The one way the installer writes a file: compare first; if the content differs,
    write a temporary file next to it and rename it over (readers never see half a
    file); if only the mode differs, chmod. Returns whether anything changed."""
    data = content.encode()
    try:
        with open(path, "rb") as f:
            same = f.read() == data
        cur_mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        same, cur_mode = False, None
    if same:
        if cur_mode != mode:
            os.chmod(path, mode)
            return True
        return False
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    if os.path.ismount(path) or path == "/etc/hosts":
        # /etc/hosts may be a bind mount (containers, the lab machine's test): rewrite in place.
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        return True
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".skiff-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def read_file(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(), os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return None


def _sysctl_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def read_sysctl(key: str):
    try:
        with open(_sysctl_path(key), encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def systemd_booted() -> bool:
    return os.path.isdir("/run/systemd/system")


class Systemd:
    def _ctl(self, *args, check=True):
        return subprocess.run(["systemctl", *args], capture_output=True, text=True, check=check)

    def is_enabled(self, unit):
        return self._ctl("is-enabled", unit, check=False).stdout.strip() == "enabled"

    def is_active(self, unit):
        return self._ctl("is-active", unit, check=False).stdout.strip() == "active"

    def daemon_reload(self):
        self._ctl("daemon-reload")

    def enable(self, unit):
        self._ctl("enable", unit)

    def start(self, unit):
        self._ctl("start", "--no-block", unit)

    def restart(self, unit):
        self._ctl("restart", "--no-block", unit)

    @staticmethod
    def ntp():
        r = subprocess.run(["timedatectl", "show", "-p", "NTP", "--value"], capture_output=True, text=True)
        return r.stdout.strip() == "yes" if r.returncode == 0 else None

    @staticmethod
    def enable_ntp():
        subprocess.run(["timedatectl", "set-ntp", "true"], check=True, capture_output=True)


def manager(kind: str):
    """kind: systemd | runner | auto."""
    if kind == "auto":
        kind = "systemd" if systemd_booted() else "runner"
    return Systemd() if kind == "systemd" else Runner()


def builtin_modules() -> set:
    """Modules compiled into the running kernel (never in /proc/modules, not always in
    /sys/module): modprobe has nothing to load for them."""
    try:
        with open(f"/lib/modules/{os.uname().release}/modules.builtin", encoding="utf-8") as f:
            return {os.path.basename(line.strip())[:-3].replace("-", "_") for line in f if line.strip().endswith(".ko")}
    except OSError:
        return set()


def survey(files, dirs, services, sysctls, modules, mgr) -> planmod.Machine:
    builtin = builtin_modules()
    # br_netfilter compiled in shows only as its sysctls.
    builtin |= {"br_netfilter"} if os.path.isdir("/proc/sys/net/bridge") else set()
    loaded = frozenset(m for m in modules if m in builtin or os.path.isdir(f"/sys/module/{m}"))
    return planmod.Machine(
        files={f.path: read_file(f.path) for f in files},
        dirs=frozenset(d for d, _ in dirs if os.path.isdir(d)),
        modules=loaded,
        sysctls={k: read_sysctl(k) for k, _ in sysctls},
        services={u: planmod.ServiceState(mgr.is_enabled(u), mgr.is_active(u)) for u in services},
        ntp=Systemd.ntp() if isinstance(mgr, Systemd) else None)


def run(p: planmod.Plan, mgr, sysctls, say=print) -> list[str]:
    """Carry out p; returns the warnings (modules that would not load, missing sysctls)."""
    warnings = []
    for d, mode in p.mkdirs:
        os.makedirs(d, mode=mode, exist_ok=True)
        os.chmod(d, mode)
        say(f"installer: mkdir {d}")
    for f in p.writes + p.chmods:
        if write_file(f.path, f.content, f.mode):
            say(f"installer: wrote {f.path}")
    for m in p.modules:
        try:
            r = subprocess.run(["modprobe", m], capture_output=True, text=True)
            ok, err = r.returncode == 0, r.stderr.strip()
        except FileNotFoundError:
            ok, err = False, "modprobe not found"
        say(f"installer: modprobe {m}: " + ("loaded" if ok else f"failed ({err})"))
        if not ok:
            warnings.append(f"kernel module {m} could not be loaded: {err}")
    pending = list(p.sysctls)
    if p.modules:   # a module just loaded may bring keys that were missing (net.bridge.*)
        pending += [(k, v) for k, v in sysctls if k in p.missing_sysctls and read_sysctl(k) not in (None, v)]
    for k, v in pending:
        with open(_sysctl_path(k), "w", encoding="utf-8") as f:
            f.write(v)
        say(f"installer: sysctl {k}={v}")
    for k in p.missing_sysctls:
        if read_sysctl(k) is None:
            warnings.append(f"sysctl {k} does not exist on this kernel (module not loaded?)")
    if p.daemon_reload:
        mgr.daemon_reload()
    for u in p.enable:
        mgr.enable(u)
        say(f"installer: enabled {u}")
    for u in p.restart:
        mgr.restart(u)
        say(f"installer: restarted {u}")
    for u in p.start:
        mgr.start(u)
        say(f"installer: started {u}")
    if p.enable_ntp:
        Systemd.enable_ntp()
        say("installer: enabled time sync (timedatectl set-ntp true)")
    return warnings
