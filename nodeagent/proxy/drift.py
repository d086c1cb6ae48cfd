"""Has anyone changed the Service rules behind the proxier's back? (PURE: no I/O.)

drifted(saved, text, jumps) compares what one `iptables-save` shows with the text the
proxier applied last and the jumps from the built-in chains it ensured, and returns
the differences (empty: nothing drifted). The proxier reads the rules once per sync
anyway (the stale-chain list render() needs), so detecting drift costs no extra
command; only a drifted rule set is re-applied, never an intact one.

Compared, per table: every SKIFF- chain with its rules in order (the order of
`-m statistic` rules is the load balancing), in iptables' own spelling: iptables-save
prints exactly the rendered rules but for two canonical forms (tested in
tests/integration/test_proxy_iptables.py): MARK --or-mark/--xor-mark as --set-xmark,
and probabilities with its own number of digits. Jumps: each (table, chain, spec) of
render.jump_rules() must appear as a rule of that built-in chain (anywhere: other
software may insert before it). Chains of other software are never looked at.
"""

import re
import shlex

from nodeagent.proxy.render import PREFIX

_CANONICAL = (("--or-mark 0x4000", "--set-xmark 0x4000/0x4000"), ("--xor-mark 0x4000", "--set-xmark 0x4000/0x0"))
_PROBABILITY = re.compile(r"--probability (\S+)")


def normalize(rule: str) -> str:
    """A rule line in iptables-save's spelling."""
    for a, b in _CANONICAL:
        rule = rule.replace(a, b)
    return _PROBABILITY.sub(lambda m: f"--probability {float(m.group(1)):.6f}", rule.strip())


def _tables(text: str) -> dict:
    """{table: {chain: [normalized rules]}} of the SKIFF- chains in an iptables-restore /
    iptables-save text; chains deleted with -X in the same text are left out. Also
    {table: [other "-A" lines]} under the key (table, "builtin")."""
    out, table = {}, None
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            out.setdefault(table, {})
            out.setdefault((table, "builtin"), [])
        elif table is None:
            continue
        elif line.startswith(":" + PREFIX):
            out[table].setdefault(line[1:].split()[0], [])
        elif line.startswith("-X " + PREFIX):
            out[table].pop(line.split()[1], None)
        elif line.startswith("-A "):
            chain = line.split()[1]
            if chain.startswith(PREFIX):
                out[table].setdefault(chain, []).append(normalize(line))
            else:
                out[(table, "builtin")].append(line.strip())
    return out


def jump_line(chain: str, spec) -> str:
    """How iptables-save prints the rule `-A chain spec` (arguments with spaces quoted)."""
    return " ".join(["-A", chain] + [f'"{a}"' if " " in a else a if a == "!" else shlex.quote(a) for a in spec])


def drifted(saved: str, text: str, jumps=()) -> list:
    """Differences between the live rules (saved) and the applied text and jumps; [] = none."""
    have, want = _tables(saved), _tables(text)
    out = []
    for table, chains in want.items():
        if isinstance(table, tuple):
            continue
        live = have.get(table, {})
        for chain, rules in chains.items():
            if chain not in live:
                out.append(f"{table}/{chain}: missing")
            elif live[chain] != rules:
                first = next((i for i, (a, b) in enumerate(zip(live[chain], rules)) if a != b),
                             min(len(live[chain]), len(rules)))
                out.append(f"{table}/{chain}: rules differ (live {len(live[chain])}, applied {len(rules)}, "
                           f"first at {first}: {(live[chain] + [''])[first][:160]!r} "
                           f"vs {(rules + [''])[first][:160]!r})")
        for chain in sorted(set(live) - set(chains)):
            out.append(f"{table}/{chain}: not ours any more")
    for table, chain, spec in jumps:
        if jump_line(chain, spec) not in have.get((table, "builtin"), []):
            out.append(f"{table}/{chain}: jump to {spec[-1]} missing")
    return out
