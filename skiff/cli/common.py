"""Helpers every command module shares: the client from the CLI's flags, and the one-line
form of a server error. Command modules import this, never each other or main.py."""

from skiff import client as clientmod
from skiff.cli.errors import CliError

_ERROR_NAMES = {
    clientmod.NotFound: "NotFound", clientmod.AlreadyExists: "AlreadyExists",
    clientmod.Conflict: "Conflict", clientmod.Invalid: "Invalid",
    clientmod.Expired: "Expired", clientmod.Unavailable: "ServiceUnavailable",
}


def server_error(exc: clientmod.ApiError, context: str = "") -> str:
    """kubectl's form: "Error from server (NotFound): <context>: <message>"."""
    name = _ERROR_NAMES.get(type(exc), "Error")
    where = f"{context}: " if context else ""
    return f"Error from server ({name}): {where}{exc.message}"


def client(args) -> clientmod.Client:
    """A client for --server (else $SKIFF_SERVER, else the config file); CliError when none."""
    try:
        return clientmod.Client.from_config(args.server)
    except clientmod.ApiError as exc:
        raise CliError(exc.message) from None


def create_forms(sub, common, ns):
    """The sub-forms of `create` (`create job NAME ...`), kubectl's generators: the
    subparsers of the `create` command, made on first use so that every topic module
    adds its own form (`create -f FILE` keeps working without one)."""
    create = sub.choices["create"]
    forms = getattr(create, "skiff_forms", None)
    if forms is None:
        forms = create.add_subparsers(dest="create_form", metavar="KIND", required=False)
        create.skiff_forms = forms
    return forms
