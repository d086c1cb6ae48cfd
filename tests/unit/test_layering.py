"""The project's layering, read from the code's imports (AST), and its size rule.

Rules (docs/architecture.md, "Layering"):
- `skiff/` (API types, client, informers, toolkit, CLI, lab) imports nothing from
  `controlplane/` or `nodeagent/`: both build on it, so it must not build on them;
- `controlplane/` and `nodeagent/` never import each other: they talk only through the API;
- no import cycle between modules of the project;
- no source file under skiff/, controlplane/, nodeagent/ over 600 lines (generated *_pb2* stubs aside).

Every import statement counts, also one inside a function or under `if TYPE_CHECKING:`: the rule is
about how the code is layered, not about what happens to work at run time. Strings handed to
importlib or to a subprocess (`python -m nodeagent.main`) are not imports.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("skiff", "controlplane", "nodeagent")
MAX_LINES = 600

# (importer, imported, rule): a module under the first package may not import one under the
# second. Packages are dotted prefixes of module names.
_OWN = "skiff/ imports nothing from controlplane/ or nodeagent/"
_PEERS = "controlplane/ and nodeagent/ never import each other"
_AGENT = "nodeagent/runtime/ and nodeagent/probes/ import nothing from nodeagent/podsync/ (it builds on them)"
FORBIDDEN = [
    ("skiff", "controlplane", _OWN),
    ("skiff", "nodeagent", _OWN),
    ("controlplane", "nodeagent", _PEERS),
    ("nodeagent", "controlplane", _PEERS),
    ("nodeagent.runtime", "nodeagent.podsync", _AGENT),
    ("nodeagent.probes", "nodeagent.podsync", _AGENT),
]


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def source_files(root: str = ROOT) -> dict[str, str]:
    """Module name -> path relative to root, for every .py under the project's packages."""
    out = {}
    for pkg in PACKAGES:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, pkg)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for fn in sorted(filenames):
                if not fn.endswith(".py"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, fn), root)
                parts = rel[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                out[".".join(parts)] = rel
    return out


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports_of(module: str, path: str, source: str, known: set[str]) -> list[tuple[int, str]]:
    """(line, imported module) for every import in one file, anywhere in it.

    `from a.b import c` imports the module a.b.c when that is a module of the project, else a.b
    (c is a name defined in a.b). Only modules of the project's packages are returned.
    """
    tree = ast.parse(source, filename=path)
    is_package = path.endswith("__init__.py")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((node.lineno, alias.name))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve_relative(module, is_package, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                found.append((node.lineno, sub if sub in known else base))
    return [(line, name) for line, name in found if name.split(".")[0] in PACKAGES]


def import_graph(root: str = ROOT):
    """(files, edges): module -> path, and module -> [(line, imported module)] (project only)."""
    files = source_files(root)
    known = set(files)
    edges = {}
    for module, rel in files.items():
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            edges[module] = imports_of(module, rel, f.read(), known)
    return files, edges


def layer_violations(files, edges) -> list[str]:
    out = []
    for module, imports in sorted(edges.items()):
        for line, target in imports:
            for importer, imported, rule in FORBIDDEN:
                if _under(module, importer) and _under(target, imported):
                    out.append(f"{files[module]}:{line} imports {target} — breaks the rule: {rule}")
                    break
    return out


def find_cycles(edges) -> list[list[str]]:
    """One cycle per strongly connected component, as a path [a, b, ..., a] (shortest through a)."""
    graph = {m: sorted({t for _, t in imp if t in edges and t != m}) for m, imp in edges.items()}
    self_loops = [[m, m] for m, imp in sorted(edges.items()) if any(t == m for _, t in imp)]
    # Tarjan's algorithm, iterative (no recursion limit on a deep graph).
    index, low, on_stack, stack, sccs, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph[nxt])))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                scc = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    scc.append(m)
                    if m == node:
                        break
                if len(scc) > 1:
                    sccs.append(sorted(scc))
    cycles = list(self_loops)
    for scc in sorted(sccs):
        members = set(scc)
        start = scc[0]
        # breadth-first from start back to start, inside the component: the shortest cycle via start
        prev, frontier, done = {}, [start], None
        while frontier and done is None:
            nxt_frontier = []
            for m in frontier:
                for t in graph[m]:
                    if t not in members:
                        continue
                    if t == start:
                        done = m
                        break
                    if t not in prev:
                        prev[t] = m
                        nxt_frontier.append(t)
                if done is not None:
                    break
            frontier = nxt_frontier
        path = [start]
        m = done
        while m != start:
            path.append(m)
            m = prev[m]
        path.append(start)
        path = [path[0]] + path[1:-1][::-1] + [start]
        cycles.append(path)
    return cycles


def describe_cycle(cycle, files, edges) -> str:
    steps = []
    for a, b in zip(cycle, cycle[1:]):
        line = min(line for line, t in edges[a] if t == b)
        steps.append(f"{files[a]}:{line} imports {b}")
    return " → ".join(cycle) + "  (" + "; ".join(steps) + ")"


# ---------------------------------------------------------------------------------------------
# the checker itself, on small trees written here


def _tree(tmp_path, files: dict[str, str]) -> str:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return str(tmp_path)


def test_checker_sees_function_local_relative_and_from_imports(tmp_path):
    root = _tree(tmp_path, {
        "skiff/__init__.py": "",
        "skiff/lab/__init__.py": "",
        "skiff/lab/a.py": "def f():\n    from controlplane import config\n",
        "skiff/lab/b.py": "from . import a\nfrom .a import f\nimport os\n",
        "controlplane/__init__.py": "",
        "controlplane/config.py": "",
        "nodeagent/__init__.py": "",
        "nodeagent/x.py": "if False:\n    import controlplane.config as c\n",
    })
    files, edges = import_graph(root)
    assert edges["skiff.lab.a"] == [(2, "controlplane.config")]
    assert edges["skiff.lab.b"] == [(1, "skiff.lab.a"), (2, "skiff.lab.a")]
    assert layer_violations(files, edges) == [
        "nodeagent/x.py:2 imports controlplane.config — breaks the rule: "
        "controlplane/ and nodeagent/ never import each other",
        "skiff/lab/a.py:2 imports controlplane.config — breaks the rule: "
        "skiff/ imports nothing from controlplane/ or nodeagent/",
    ]


def test_checker_applies_rules_between_subpackages(tmp_path):
    root = _tree(tmp_path, {
        "nodeagent/__init__.py": "",
        "nodeagent/podsync/__init__.py": "",
        "nodeagent/podsync/model.py": "from nodeagent.runtime.container import Observed\n",
        "nodeagent/podsyncer.py": "",
        "nodeagent/runtime/__init__.py": "",
        "nodeagent/runtime/container.py": "import nodeagent.podsyncer\n",
        "nodeagent/runtime/docker.py": "from nodeagent.podsync import model\n",
    })
    files, edges = import_graph(root)
    assert layer_violations(files, edges) == [
        "nodeagent/runtime/docker.py:1 imports nodeagent.podsync.model — breaks the rule: "
        "nodeagent/runtime/ and nodeagent/probes/ import nothing from nodeagent/podsync/ (it builds on them)",
    ]


def test_checker_allows_the_permitted_directions(tmp_path):
    root = _tree(tmp_path, {
        "skiff/__init__.py": "",
        "skiff/client.py": "import grpc\n",
        "controlplane/__init__.py": "from skiff import client\n",
        "nodeagent/__init__.py": "import skiff.client\n",
    })
    files, edges = import_graph(root)
    assert layer_violations(files, edges) == []
    assert find_cycles(edges) == []


def test_checker_reports_a_cycle_as_a_path(tmp_path):
    root = _tree(tmp_path, {
        "skiff/__init__.py": "",
        "skiff/cli/__init__.py": "",
        "skiff/cli/main.py": "from skiff.cli import node_cmds\n",
        "skiff/cli/node_cmds.py": "import os\n\ndef f():\n    from skiff.cli.main import g\n",
        "skiff/x.py": "import skiff.y\n",
        "skiff/y.py": "import skiff.z\n",
        "skiff/z.py": "from skiff import x\n",
    })
    files, edges = import_graph(root)
    cycles = find_cycles(edges)
    assert cycles == [
        ["skiff.cli.main", "skiff.cli.node_cmds", "skiff.cli.main"],
        ["skiff.x", "skiff.y", "skiff.z", "skiff.x"],
    ]
    assert describe_cycle(cycles[0], files, edges) == (
        "skiff.cli.main → skiff.cli.node_cmds → skiff.cli.main  "
        "(skiff/cli/main.py:1 imports skiff.cli.node_cmds; skiff/cli/node_cmds.py:4 imports skiff.cli.main)"
    )


# ---------------------------------------------------------------------------------------------
# the rules, on this repository


def test_skiff_controlplane_and_nodeagent_keep_their_layers():
    files, edges = import_graph()
    violations = layer_violations(files, edges)
    assert not violations, "imports that break the layering:\n" + "\n".join(violations)


def test_no_import_cycles_between_project_modules():
    files, edges = import_graph()
    cycles = [describe_cycle(c, files, edges) for c in find_cycles(edges)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_source_file_over_600_lines():
    too_long = []
    for module, rel in sorted(source_files().items()):
        if "_pb2" in os.path.basename(rel):
            continue   # generated by proto/generate.py
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            text = f.read()
        if text.startswith('"""Generated by proto/generate.py'):
            continue   # skiff/api/descriptions.py: one entry per proto comment
        n = text.count("\n")
        if n > MAX_LINES:
            too_long.append(f"{rel}: {n} lines (at most {MAX_LINES})")
    assert not too_long, "split these into modules with one job each:\n" + "\n".join(too_long)


@pytest.mark.parametrize("pkg", PACKAGES)
def test_the_checker_sees_every_package(pkg):
    files = source_files()
    assert any(m == pkg for m in files) and sum(m.startswith(pkg + ".") for m in files) > 3
