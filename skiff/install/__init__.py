"""skiff's installer for real machines (VMs, Debian/Ubuntu hosts): deploy/install.sh
installs the packages and skiff, then runs `python -m skiff.install` (main.py).

render.py  every file (configs, env files, units, modules-load.d, sysctl.d, /etc/hosts), pure
plan.py    desired vs the machine -> actions, pure (the table-tested part)
apply.py   survey the machine, run a plan; write_file() is the only writer (compares first)
runner.py  runs a unit's ExecStart where systemd is not PID 1 (CI, the lab machines)
join.py    join material through a shared directory (Vagrant's .vagrant-skiff/), the join token
cluster.py the cluster's shared secrets (CA, encryption config, SA key, admin cert) and the
           replica's serving certificate (kept while it fits)
"""
