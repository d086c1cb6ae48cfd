"""`skiff secrets-encrypt`: Secrets encrypted at rest (named after k3s' `secrets-encrypt`).

- `skiff secrets-encrypt reencrypt [-n NS]`: rewrite every Secret (of every namespace,
  or of NS) with the encryption config's current write key. It is Kubernetes' rotation
  step `kubectl get secrets -A -o json | kubectl replace -f -`: each Secret is replaced by
  itself at its resourceVersion; the replica that takes the write keeps a Secret already
  sealed with its write key as it is (no new resourceVersion) and stores one sealed with
  another key anew (controlplane/store/sealing.py). A Secret written meanwhile is read
  again and retried; one deleted meanwhile is skipped. Prints each Secret rewritten and a
  summary; exit 1 if any Secret could not be rewritten (run it again).
- `skiff secrets-encrypt new-config [--key-name NAME]`: print a new encryption config file
  (one fresh random AES-256 key, then identity) for a replica's `encryptionConfigFile`.

The procedure around them (add the new key everywhere first, then make it the first,
re-encrypt, then drop the old key) is docs/secrets-encryption.md.
"""

import sys

from skiff import client as clientmod
from skiff import encryption_config
from skiff.cli.common import client as _client
from skiff.cli.common import server_error
from skiff.cli.errors import CliError

ATTEMPTS = 5


def reencrypt_one(c, secret) -> bool:
    """Replace secret by itself (retrying on conflicts); True if the store rewrote it,
    False if it was current or is gone. ApiError when it keeps failing."""
    for attempt in range(ATTEMPTS):
        try:
            after = c.update(secret)
            return after.metadata.resource_version != secret.metadata.resource_version
        except clientmod.NotFound:
            return False
        except clientmod.Conflict:
            if attempt == ATTEMPTS - 1:
                raise
            try:
                secret = c.get("Secret", secret.metadata.name, namespace=secret.metadata.namespace)
            except clientmod.NotFound:
                return False
    return False


def reencrypt(c, namespace: str = "", out=sys.stdout, err=sys.stderr) -> tuple:
    """Every Secret of namespace ("" = all) rewritten with the write key:
    (rewritten, already current, failed)."""
    secrets, _ = c.list("Secret", namespace=namespace)
    rewritten = current = failed = 0
    for secret in secrets:
        where = f"secret/{secret.metadata.name} -n {secret.metadata.namespace}"
        try:
            if reencrypt_one(c, secret):
                rewritten += 1
                print(f"{where} re-encrypted", file=out)
            else:
                current += 1
        except clientmod.ApiError as exc:
            failed += 1
            print(f"{where}: {server_error(exc)}", file=err)
    return rewritten, current, failed


def cmd_reencrypt(args) -> int:
    c = _client(args)
    try:
        rewritten, current, failed = reencrypt(c, args.namespace or "")
    except clientmod.ApiError as exc:
        raise CliError(server_error(exc)) from None
    finally:
        c.close()
    print(f"{rewritten} secret(s) re-encrypted, {current} already current"
          + (f", {failed} failed (run again)" if failed else ""))
    return 1 if failed else 0


def cmd_new_config(args) -> int:
    print(encryption_config.new_config(args.key_name), end="")
    return 0


def add_parsers(sub, common) -> None:
    p = sub.add_parser("secrets-encrypt", parents=[common], help="Secrets encrypted at rest")
    psub = p.add_subparsers(dest="secrets_cmd", required=True)
    r = psub.add_parser("reencrypt", parents=[common],
                        help="rewrite every Secret with the encryption config's first key")
    r.add_argument("-n", "--namespace", default=None, help="only this namespace (default: all)")
    r.set_defaults(func=cmd_reencrypt)
    n = psub.add_parser("new-config", help="print a new encryption config file (a fresh key)")
    n.add_argument("--key-name", default="key1")
    n.set_defaults(func=cmd_new_config)
