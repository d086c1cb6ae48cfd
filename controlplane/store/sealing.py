"""Secrets sealed at rest: what the store writes into the Raft log, and opens on the way out.

Where: the store is the one way in and out of the replicated state (controlplane/store/
store.py and reader.py), so it seals every command that carries a Secret before it is
proposed (or dry-run), and opens every Secret it hands out: get, list, watch events, the
admission view, write results. Nothing else (the API servicer, the bootstrapper, admission)
ever sees a sealed Secret, and the Raft log, the journal and the dump (objects, remembered
results, the change log) never hold a Secret's content in clear.

What: a Secret's `data` (with `stringData` folded in, which wins, as in Kubernetes'
defaulting) and its `metadata.annotations` (kubectl's last-applied-configuration holds a copy
of the data) are serialized together (a Secret message holding only those, deterministic
encoding) and sealed with the encryption config's write provider (controlplane/store/
encryption.py). The stored Secret keeps name, namespace, labels, type, immutable and the
bookkeeping in clear, and holds the sealed value as its only data entry, under SEALED_KEY:
a name no user key can have (config keys allow no ':'), so a sealed Secret is never taken
for one stored in clear. A Secret without data and annotations is stored as it is. Kubernetes
seals the whole object; skiff leaves what the state machine and selectors read in clear.

Comparisons: AES-GCM with a random nonce never seals the same content twice alike, and the
state machine compares stored bytes (an unchanged write is "unchanged" with no new
resourceVersion; an immutable Secret's data may not change). So a write whose content equals
the stored Secret's (after decryption) keeps the stored sealed value as it is, whatever key
sealed it. A stored value sealed by another key than the write key is stale: after such a
write the store rewrites it with the write key through the state machine's "encryption"
subresource (Update with expected_rv: compare-and-swap on the version it decrypted; it
changes only the sealed fields, so it also re-encrypts an immutable Secret). That is
Kubernetes' rule that a write of an object read with a stale key always stores it again,
and what `skiff secrets-encrypt reencrypt` relies on.
"""

from dataclasses import replace

from controlplane.store.commands import Apply, Create, Update
from controlplane.store.encryption import IDENTITY, DecryptError
from skiff.api import kinds
from skiff.api import objects_pb2 as pb

SEALED_KEY = "k8s:enc"
SEALED_KIND = "Secret"
SEALED_FIELD = "secret"       # the Object envelope's field of a Secret
REWRITE = "encryption"        # the state machine's subresource that rewrites sealed fields only


# The first byte of an encoded Object envelope that holds a Secret: the envelope is a oneof,
# so its encoding is that one field, tag first (field number 7, length-delimited). Lets every
# other write pass without being parsed.
_SECRET_TAG = bytes([pb.Object.DESCRIPTOR.fields_by_name[SEALED_FIELD].number << 3 | 2])


def _secret_in(cmd) -> pb.Secret | None:
    """The Secret a write command carries (parsed), else None."""
    if not isinstance(cmd, (Create, Update, Apply)) or not cmd.object[:1] == _SECRET_TAG:
        return None
    env = pb.Object()
    env.ParseFromString(cmd.object)
    return env.secret if env.WhichOneof("object") == SEALED_FIELD else None


def _aad(secret) -> bytes:
    return f"secrets/{secret.metadata.namespace}/{secret.metadata.name}".encode()


def _what(secret) -> str:
    return f'secret "{secret.metadata.namespace}/{secret.metadata.name}"'


def _content(secret) -> pb.Secret:
    """What a Secret seals: data (stringData folded in) and annotations."""
    out = pb.Secret(data=secret.data)
    for key, value in secret.string_data.items():
        out.data[key] = value.encode("utf-8")
    out.metadata.annotations.update(secret.metadata.annotations)
    return out


def is_sealed(secret) -> bool:
    return SEALED_KEY in secret.data


class Sealer:
    """Seals and opens Secrets with one Encryption (IDENTITY: clear, and sealed values fail)."""

    def __init__(self, encryption=None):
        self.encryption = encryption or IDENTITY

    # ------------------------------------------------------------ one Secret

    def open_secret(self, secret) -> pb.Secret:
        """The Secret as clients see it (a new message); DecryptError if it cannot be read."""
        out = pb.Secret()
        out.CopyFrom(secret)
        if not is_sealed(secret):
            if secret.data or secret.metadata.annotations:
                self.encryption.refuse_clear(_what(secret))
            return out
        content = pb.Secret()
        content.ParseFromString(self.encryption.open(secret.data[SEALED_KEY], _aad(secret), _what(secret)))
        out.data.clear()
        out.data.update(content.data)
        out.metadata.annotations.clear()
        out.metadata.annotations.update(content.metadata.annotations)
        return out

    def seal_secret(self, secret, stored=None) -> pb.Secret:
        """secret as the store keeps it (a new message). stored: the Secret stored under the
        same key, if any; its sealed form is kept when the content is the same (module doc)."""
        content = _content(secret)
        out = pb.Secret()
        out.CopyFrom(secret)
        out.string_data.clear()
        if stored is not None:
            before = self.open_secret(stored)
            if dict(before.data) == dict(content.data) and \
                    dict(before.metadata.annotations) == dict(content.metadata.annotations):
                self._take_sealed(out, stored)
                return out
        if not content.data and not content.metadata.annotations:
            out.data.clear()
            return out
        sealed = self.encryption.seal(kinds.encode(content), _aad(secret))
        if sealed is None:        # identity writes: in clear
            out.data.clear()
            out.data.update(content.data)
            return out
        out.data.clear()
        out.data[SEALED_KEY] = sealed
        out.metadata.annotations.clear()
        return out

    @staticmethod
    def _take_sealed(out, stored) -> None:
        out.data.clear()
        out.data.update(stored.data)
        out.metadata.annotations.clear()
        out.metadata.annotations.update(stored.metadata.annotations)

    def is_stale(self, secret) -> bool:
        """Stored with another provider or key than the write one (rewrite it: module doc)."""
        if is_sealed(secret):
            return not self.encryption.is_current(secret.data[SEALED_KEY])
        return bool(secret.data or secret.metadata.annotations) and self.encryption.encrypts

    def resealed(self, stored) -> pb.Secret:
        """The object of the REWRITE write for a stale stored Secret: its identity and its
        content sealed anew with the write key (nothing else is read from it)."""
        opened = self.open_secret(stored)
        fresh = Sealer(self.encryption).seal_secret(opened)
        out = pb.Secret(metadata=pb.ObjectMeta(name=stored.metadata.name,
                                               namespace=stored.metadata.namespace))
        self._take_sealed(out, fresh)
        return out

    # ------------------------------------------------------------ envelopes, commands, results

    def open_env(self, env: pb.Object) -> pb.Object:
        """env with a Secret opened (a new envelope), any other object as it is."""
        if env.WhichOneof("object") != SEALED_FIELD:
            return env
        return pb.Object(secret=self.open_secret(env.secret))

    def open_bytes(self, data: bytes | None) -> bytes | None:
        if data is None or data[:1] != _SECRET_TAG:
            return data
        env = pb.Object()
        env.ParseFromString(data)
        if env.WhichOneof("object") != SEALED_FIELD:
            return data
        return kinds.encode(self.open_env(env))

    def open_result(self, result):
        """A store result ("ok", outcome, env bytes, rv) with its object opened."""
        if isinstance(result, tuple) and len(result) == 4 and result[0] == "ok" and result[2] is not None:
            return (*result[:2], self.open_bytes(result[2]), result[3])
        return result

    def seal_command(self, cmd, stored_at):
        """cmd with its Secret sealed (Create, Update, Apply); stored_at(key) -> the stored
        envelope at key or None (the store's applied state, read-only)."""
        secret = _secret_in(cmd)
        if secret is None:
            return cmd
        if isinstance(cmd, Update) and cmd.subresource == REWRITE:
            return cmd        # the store's own rewrite: sealed already
        stored = None
        if not isinstance(cmd, Create):
            stored_env = stored_at((SEALED_KIND, secret.metadata.namespace, secret.metadata.name))
            if stored_env is not None and stored_env.WhichOneof("object") == SEALED_FIELD:
                stored = stored_env.secret
        sealed = pb.Object(secret=self.seal_secret(secret, stored))
        return replace(cmd, object=kinds.encode(sealed))


def sealed_key(cmd):
    """The store key of a Secret a write command carries, else None."""
    secret = _secret_in(cmd)
    return None if secret is None else (SEALED_KIND, secret.metadata.namespace, secret.metadata.name)


__all__ = ["Sealer", "DecryptError", "SEALED_KEY", "REWRITE", "is_sealed", "sealed_key"]
