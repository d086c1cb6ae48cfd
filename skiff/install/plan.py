"""The installer's planner: desired files and kernel settings vs what the machine has
-> the actions, nothing else (pure; apply.py gathers `Machine` and runs the `Plan`).

Rules (what makes a rerun a no-op and a changed input change exactly that):
- a file is written only if its content differs or it is missing; a mode alone that
  differs is a chmod;
- a kernel module is loaded only if not loaded; a sysctl is set only if its value
  differs (a key the kernel does not have, e.g. net.bridge.* before br_netfilter, is
  reported, not fatal);
- a unit file written -> daemon-reload; a service is enabled if it is not; a service
  whose unit, config or environment file changed is restarted if it runs, and started
  if it does not; an unchanged service that is not running is started (that is the
  state the installer promises), one that runs is left alone.
"""

from dataclasses import dataclass, field

from skiff.install.render import File


@dataclass(frozen=True)
class ServiceState:
    enabled: bool
    active: bool


@dataclass(frozen=True)
class Machine:
    """What is there now. files: path -> (content, mode) for each path asked, None if
    absent; sysctls: key -> value, None if the kernel has no such key."""
    files: dict
    dirs: frozenset = frozenset()
    modules: frozenset = frozenset()
    sysctls: dict = field(default_factory=dict)
    services: dict = field(default_factory=dict)
    ntp: bool | None = None     # None: cannot tell / not managed here (no systemd)


@dataclass
class Plan:
    mkdirs: list = field(default_factory=list)      # (path, mode)
    writes: list = field(default_factory=list)      # File (new or changed content)
    chmods: list = field(default_factory=list)      # File (same content, other mode)
    modules: list = field(default_factory=list)
    sysctls: list = field(default_factory=list)     # (key, value)
    missing_sysctls: list = field(default_factory=list)
    daemon_reload: bool = False
    enable: list = field(default_factory=list)
    restart: list = field(default_factory=list)
    start: list = field(default_factory=list)
    enable_ntp: bool = False

    @property
    def noop(self) -> bool:
        return not (self.mkdirs or self.writes or self.chmods or self.modules or self.sysctls
                    or self.daemon_reload or self.enable or self.restart or self.start or self.enable_ntp)

    def describe(self) -> list[str]:
        """One line per action, in the order apply runs them."""
        out = [f"mkdir {p} (mode {m:o})" for p, m in self.mkdirs]
        out += [f"write {f.path} (mode {f.mode:o})" for f in self.writes]
        out += [f"chmod {f.mode:o} {f.path}" for f in self.chmods]
        out += [f"modprobe {m}" for m in self.modules]
        out += [f"sysctl {k}={v}" for k, v in self.sysctls]
        out += ["systemctl daemon-reload"] if self.daemon_reload else []
        out += [f"enable {u}" for u in self.enable]
        out += [f"restart {u}" for u in self.restart]
        out += [f"start {u}" for u in self.start]
        out += ["enable time sync (timedatectl set-ntp true)"] if self.enable_ntp else []
        return out


def plan(files: list[File], dirs: list, machine: Machine, services: dict,
         sysctls=(), modules=(), manage_ntp: bool = True) -> Plan:
    """files: render()'s; dirs: (path, mode) that must exist; services: unit -> files
    it depends on (render.services_of); sysctls: (key, value); modules: names to load."""
    p = Plan()
    p.mkdirs = [(d, m) for d, m in dirs if d not in machine.dirs]
    changed = set()
    for f in files:
        have = machine.files.get(f.path)
        if have is None or have[0] != f.content:
            p.writes.append(f)
            changed.add(f.path)
        elif have[1] != f.mode:
            p.chmods.append(f)
            changed.add(f.path)
    p.modules = [m for m in modules if m not in machine.modules]
    for key, value in sysctls:
        have = machine.sysctls.get(key)
        if have is None:
            p.missing_sysctls.append(key)
        elif have.split() != value.split():
            p.sysctls.append((key, value))
    p.daemon_reload = any(f.path.endswith(".service") for f in p.writes)
    for unit, deps in services.items():
        st = machine.services.get(unit, ServiceState(False, False))
        if not st.enabled:
            p.enable.append(unit)
        if not st.active:
            p.start.append(unit)
        elif changed & set(deps):
            p.restart.append(unit)
    p.enable_ntp = manage_ntp and machine.ntp is False
    return p
