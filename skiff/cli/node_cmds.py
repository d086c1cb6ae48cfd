"""Commands that reach pods and nodes: logs, exec, scale, cordon, uncordon (drain: drain.py)."""

import os
import sys

from skiff import client as clientmod
from skiff.cli.common import client as _client
from skiff.cli.common import server_error as _server_error
from skiff.cli import logs_target
from skiff.cli.errors import CliError
from skiff.retry import GaveUp, update_on_conflict


def _pod_name(word: str) -> str:
    if "/" in word:
        kind, _, name = word.partition("/")
        if kind not in ("pod", "pods", "po"):
            raise CliError(f"only pods are supported here, not {kind!r}")
        return name
    return word


def cmd_logs(args) -> int:
    c = _client(args)
    out = sys.stdout.buffer
    try:
        pod, note = logs_target.resolve(c, args.pod, args.namespace or "default")
        if note:
            print(note, file=sys.stderr)
        for data in c.logs(pod, namespace=args.namespace or "default",
                           container=args.container or "", follow=args.follow,
                           tail_lines=args.tail if args.tail is not None and args.tail >= 0 else None,
                           previous=args.previous, timestamps=args.timestamps):
            out.write(data)
            out.flush()
    except clientmod.ApiError as exc:
        raise CliError(_server_error(exc)) from None
    except KeyboardInterrupt:
        return 0
    return 0


def _stdin_chunks():
    fd = sys.stdin.fileno()
    while True:
        data = os.read(fd, 4096)
        if not data:
            return
        yield data


def cmd_exec(args) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CliError("you must specify at least one command for the container (skiff exec POD -- CMD)")
    c = _client(args)
    tty = args.tty and sys.stdin.isatty()
    restore = None
    size = None
    if tty:
        import termios
        import tty as ttymod
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        ttymod.setraw(fd)
        restore = lambda: termios.tcsetattr(fd, termios.TCSADRAIN, saved)  # noqa: E731
        cols, rows = os.get_terminal_size()
        size = (cols, rows)
    code = 1
    try:
        stream = c.exec(_pod_name(args.pod), command, namespace=args.namespace or "default",
                        container=args.container or "", stdin=_stdin_chunks() if args.stdin else None,
                        tty=tty, size=size)
        for msg in stream:
            if msg.stdout:
                sys.stdout.buffer.write(msg.stdout)
                sys.stdout.buffer.flush()
            if msg.stderr:
                sys.stderr.buffer.write(msg.stderr)
                sys.stderr.buffer.flush()
            if msg.error:
                raise CliError(msg.error)
            if msg.HasField("exit_code"):
                code = msg.exit_code
    except clientmod.ApiError as exc:
        raise CliError(_server_error(exc)) from None
    finally:
        if restore:
            restore()
    return code


def _update_with_retry(c, kind, name, namespace, mutate):
    try:
        return update_on_conflict(c, kind, name, namespace, mutate)
    except GaveUp as exc:
        raise CliError(exc.message) from None


def cmd_scale(args) -> int:
    if args.replicas < 0:
        raise CliError("--replicas must be >= 0")
    words = args.target
    if len(words) == 1 and "/" in words[0]:
        kind, _, name = words[0].partition("/")
    elif len(words) == 2:
        kind, name = words
    else:
        raise CliError("usage: skiff scale deploy NAME --replicas N (or deploy/NAME)")
    from skiff.api import kinds
    try:
        k = kinds.lookup(kind)
    except KeyError as exc:
        raise CliError(exc.args[0]) from None
    if not k.scale:
        scalable = " and ".join(x.plural for x in kinds.KINDS if x.scale)
        raise CliError(f"cannot scale {k.resource}: only {scalable} scale")
    c = _client(args)

    def mutate(obj):
        obj.spec.replicas = args.replicas

    try:
        obj = _update_with_retry(c, k, name, args.namespace or "default", mutate)
    except clientmod.ApiError as exc:
        raise CliError(_server_error(exc)) from None
    print(f"{k.name.lower()}{'.' + k.group if k.group else ''}/{obj.metadata.name} scaled")
    return 0


def set_unschedulable(c, node, value):
    def mutate(obj):
        if obj.spec.unschedulable == value:
            return False
        obj.spec.unschedulable = value
    return _update_with_retry(c, "node", node, "", mutate)


def cmd_cordon(args, value=True) -> int:
    c = _client(args)
    try:
        before = c.get("node", args.node, "")
        set_unschedulable(c, args.node, value)
    except clientmod.ApiError as exc:
        raise CliError(_server_error(exc)) from None
    word = "cordoned" if value else "uncordoned"
    print(f"node/{args.node} {word}" if before.spec.unschedulable != value else f"node/{args.node} already {word}")
    return 0


def add_parsers(sub, common, ns) -> None:
    p = sub.add_parser("logs", parents=[common, ns], help="print a container's logs")
    p.add_argument("pod")
    p.add_argument("-c", "--container", default=None)
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-p", "--previous", action="store_true")
    p.add_argument("--tail", type=int, default=None)
    p.add_argument("--timestamps", action="store_true")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("exec", parents=[common, ns], help="run a command in a container")
    p.add_argument("pod")
    p.add_argument("-c", "--container", default=None)
    p.add_argument("-i", "--stdin", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("command", nargs="*", help="-- COMMAND [ARGS...]")
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("scale", parents=[common, ns], help="set replicas of a deployment/replicaset")
    p.add_argument("target", nargs="+", metavar="KIND NAME | KIND/NAME")
    p.add_argument("--replicas", type=int, required=True)
    p.set_defaults(func=cmd_scale)

    for name, value in (("cordon", True), ("uncordon", False)):
        p = sub.add_parser(name, parents=[common],
                           help="mark a node unschedulable" if value else "mark a node schedulable")
        p.add_argument("node")
        p.set_defaults(func=(lambda v: lambda args: cmd_cordon(args, v))(value))
