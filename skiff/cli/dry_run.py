"""`--dry-run=none|client|server` for apply, create and delete, as kubectl has it.

client: the manifest is parsed and admitted locally (skiff.api.local_admission);
        nothing is written. Create needs no server at all; apply reads the live
        object to say "created" or "configured" (it cannot tell "unchanged": only
        the server merges), and delete reads it to fail as the real delete would.
server: the request carries dry_run=true; the server runs the whole admission
        chain and the store's checks, answers as the write would, stores nothing.
The result line gets kubectl's suffix: "(dry run)" or "(server dry run)".
"""

from skiff import client as clientmod
from skiff.api.errors import ValidationError
from skiff.api.local_admission import admit_locally
from skiff.cli.errors import CliError

MODES = ("none", "client", "server")
SUFFIX = {"none": "", "client": " (dry run)", "server": " (server dry run)"}
_MISSING = ""  # what argparse stores for a bare --dry-run


def add_flag(parser) -> None:
    parser.add_argument("--dry-run", nargs="?", const=_MISSING, default="none", metavar="MODE",
                        help="client: check locally, send nothing; server: the server checks "
                             "everything and stores nothing; none (default): do it")


def mode(args) -> str:
    """The dry-run mode of a parsed command line; CliError for a missing or unknown value
    (kubectl no longer takes a bare --dry-run to mean client)."""
    value = getattr(args, "dry_run", "none")
    if value == _MISSING:
        raise CliError('--dry-run needs a value: --dry-run=client (check locally) or '
                       '--dry-run=server (the server checks, stores nothing)')
    if value not in MODES:
        raise CliError(f'Invalid dry-run value ({value}). Must be "none", "server", or "client".')
    return value


def client_write(c, kind, msg, create: bool) -> str:
    """Admit msg locally and return what the write would report: created, or for
    apply, configured when the object exists (read through c). Raises
    ValidationError (invalid object) or ApiError (the read failed)."""
    admit_locally(kind, msg)
    if create or not msg.metadata.name:
        return "created"
    try:
        c.get(kind, msg.metadata.name, namespace=msg.metadata.namespace)
    except clientmod.NotFound:
        return "created"
    return "configured"


def invalid(kind, msg, exc: ValidationError, verb: str, where: str) -> str:
    """The line for an object refused by local admission, shaped like the server's."""
    name = msg.metadata.name or msg.metadata.generate_name
    return f'error: error when {verb} "{where}" (dry run): {kind.name} "{name}" is invalid:\n{exc}'


def shown_name(kind, msg) -> str:
    """kind[.group]/name for a result line; a generateName object shows its prefix."""
    group = f".{kind.group}" if kind.group else ""
    return f"{kind.name.lower()}{group}/{msg.metadata.name or msg.metadata.generate_name}"
