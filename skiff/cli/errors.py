"""The CLI's one error type: its message is printed as is, and the exit code is 1."""


class CliError(Exception):
    pass
