"""Encryption at rest: the encryption config file and its providers.

The file is Kubernetes' EncryptionConfiguration (apiserver.config.k8s.io/v1), the
subset skiff supports (a replica reads it at start: controlplane/config.py,
`encryptionConfigFile`; docs/secrets-encryption.md is the operator's guide):

    apiVersion: apiserver.config.k8s.io/v1
    kind: EncryptionConfiguration
    resources:
      - resources: [secrets]
        providers:
          - aesgcm:
              keys:
                - name: key2                      # the first key of the first provider encrypts
                  secret: <base64 of 16, 24 or 32 random bytes>
                - name: key1                      # every listed key still decrypts
                  secret: <base64>
          - identity: {}                          # reads what was stored in clear

As in Kubernetes, the first provider encrypts every write (its first key, for aesgcm)
and every provider decrypts; a stored value names what sealed it in its prefix,
`k8s:enc:aesgcm:v1:<key name>:` followed by a random 12-byte nonce and the AES-GCM
ciphertext with its 16-byte tag. The associated data binds a value to its object
(`secrets/<namespace>/<name>`), so a value copied onto another Secret does not decrypt.
`identity` as the first provider stores in clear (Kubernetes' way to decrypt a cluster
again). aescbc, secretbox and kms are Kubernetes providers skiff does not implement:
the file is refused naming them ("not supported yet"); so are resources other than
secrets. AES-GCM with random nonces is good for about 2^32 writes per key (NIST
SP 800-38D); Kubernetes' advice is to rotate aesgcm keys every 200,000 writes.

A value that no listed provider can read (its key was removed from the file, the key's
secret is wrong, the value was altered) raises DecryptError naming the object, the key
and the file: a replica never serves a Secret it could not decrypt.
"""

import base64
import binascii
import os

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from skiff.encryption_config import API_VERSION, KIND

PREFIX = b"k8s:enc:"
AESGCM_PREFIX = b"k8s:enc:aesgcm:v1:"
NONCE_BYTES = 12
KEY_SIZES = (16, 24, 32)
# Kubernetes' providers that skiff refuses until it implements them.
_UNSUPPORTED = ("aescbc", "secretbox", "kms")
SUPPORTED_RESOURCES = ("secrets",)


class EncryptionConfigError(ValueError):
    """The encryption config file is unreadable or invalid (the message names the field)."""


class DecryptError(Exception):
    """A stored value this replica cannot decrypt."""


class Encryption:
    """The providers of one encryption config: seal() with the first, open() with any.

    aesgcm_keys: [(name, key bytes)] in file order; write: ("aesgcm", name) or
    ("identity", ""): what seals new values; identity: whether values stored in clear
    may be read; source: the file (for messages).
    """

    def __init__(self, aesgcm_keys=(), write=("identity", ""), identity=True, source="(none)"):
        self._keys = {name: AESGCM(key) for name, key in aesgcm_keys}
        self.key_names = tuple(name for name, _ in aesgcm_keys)
        self.write = write
        self.identity = identity
        self.source = source

    @property
    def encrypts(self) -> bool:
        return self.write[0] != "identity"

    def describe_write(self) -> str:
        return "identity (stored in clear)" if not self.encrypts else f"{self.write[0]} key {self.write[1]}"

    def seal(self, plaintext: bytes, aad: bytes) -> bytes | None:
        """plaintext sealed with the write provider; None when that is identity (store in clear)."""
        if not self.encrypts:
            return None
        name = self.write[1]
        nonce = os.urandom(NONCE_BYTES)
        return AESGCM_PREFIX + name.encode() + b":" + nonce + self._keys[name].encrypt(nonce, plaintext, aad)

    def is_current(self, value: bytes | None) -> bool:
        """Whether value (None: stored in clear) is what seal() would write now, key and all."""
        if value is None:
            return not self.encrypts
        return self.encrypts and value.startswith(AESGCM_PREFIX + self.write[1].encode() + b":")

    def key_of(self, value: bytes) -> str:
        """The provider and key a sealed value names, for messages: "aesgcm key key1"."""
        provider, _, rest = value[len(PREFIX):].partition(b":")
        if provider == b"aesgcm":
            name = rest.partition(b":")[2].partition(b":")[0]
            return f"aesgcm key {name.decode(errors='replace')!r}"
        return f"provider {provider.decode(errors='replace')!r}"

    def open(self, value: bytes, aad: bytes, what: str) -> bytes:
        """The plaintext of a sealed value; DecryptError (naming `what`) if no provider reads it."""
        if not value.startswith(AESGCM_PREFIX):
            raise DecryptError(f"{what}: stored value is sealed by {self.key_of(value)}, which skiff "
                               "cannot read (its prefix is not k8s:enc:aesgcm:v1:)")
        name, sep, body = value[len(AESGCM_PREFIX):].partition(b":")
        key = self._keys.get(name.decode(errors="replace"))
        if not sep or key is None:
            raise DecryptError(
                f"{what}: stored value is encrypted with aesgcm key {name.decode(errors='replace')!r}, "
                f"which this replica's encryption config ({self.source}) does not list "
                f"(it lists {', '.join(self.key_names) or 'no aesgcm key'}); put the key back "
                "(the value is not served)")
        if len(body) < NONCE_BYTES + 16:
            raise DecryptError(f"{what}: stored value is truncated ({len(value)} bytes)")
        try:
            return key.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], aad)
        except InvalidTag:
            raise DecryptError(
                f"{what}: stored value does not decrypt with aesgcm key {name.decode()!r} of "
                f"{self.source}: that name holds a different secret than the one that encrypted "
                "it, or the value was altered (the value is not served)") from None

    def refuse_clear(self, what: str) -> None:
        if not self.identity:
            raise DecryptError(f"{what}: stored in clear, but the encryption config ({self.source}) "
                               "lists no identity provider to read it: add `- identity: {}` as a "
                               "later provider, then `skiff secrets-encrypt reencrypt`")


IDENTITY = Encryption()


def load(path: str) -> Encryption:
    """Read and validate an encryption config file; EncryptionConfigError names the field."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as exc:
        raise EncryptionConfigError(f"{path}: {exc}") from None
    return parse(doc, path)


def parse(doc, source: str = "(inline)") -> Encryption:
    where = source

    def fail(field, detail):
        raise EncryptionConfigError(f"{where}: {field}: {detail}")

    if not isinstance(doc, dict):
        fail("(top)", "expected a mapping (an EncryptionConfiguration)")
    unknown = sorted(set(doc) - {"apiVersion", "kind", "resources"})
    if unknown:
        fail(unknown[0], "unknown field")
    if doc.get("apiVersion") != API_VERSION:
        fail("apiVersion", f"must be {API_VERSION}, got {doc.get('apiVersion')!r}")
    if doc.get("kind") != KIND:
        fail("kind", f"must be {KIND}, got {doc.get('kind')!r}")
    entries = doc.get("resources")
    if not isinstance(entries, list) or not entries:
        fail("resources", "Required value: a list with one entry for secrets")
    if len(entries) != 1:
        fail("resources[1]", "not supported yet: skiff encrypts secrets only (one entry)")
    entry = entries[0]
    if not isinstance(entry, dict) or sorted(entry) != ["providers", "resources"]:
        fail("resources[0]", "expected a mapping with `resources` and `providers`")
    names = entry["resources"]
    if not isinstance(names, list) or not names:
        fail("resources[0].resources", "Required value: [secrets]")
    for i, name in enumerate(names):
        if name not in SUPPORTED_RESOURCES:
            fail(f"resources[0].resources[{i}]", f"{name!r}: not supported yet (skiff encrypts secrets only)")
    providers = entry["providers"]
    if not isinstance(providers, list) or not providers:
        fail("resources[0].providers", "Required value: at least one provider")
    keys, write, identity = [], None, False
    for i, provider in enumerate(providers):
        at = f"resources[0].providers[{i}]"
        if not isinstance(provider, dict) or len(provider) != 1:
            fail(at, "expected a mapping with exactly one provider (aesgcm or identity)")
        (ptype, body), = provider.items()
        if ptype in _UNSUPPORTED:
            fail(f"{at}.{ptype}", "not supported yet (skiff supports aesgcm and identity)")
        if ptype == "identity":
            if body not in (None, {}):
                fail(f"{at}.identity", "takes no settings: write `identity: {}`")
            identity = True
            write = write or ("identity", "")
            continue
        if ptype != "aesgcm":
            fail(f"{at}.{ptype}", "unknown provider (aesgcm, identity; Kubernetes' aescbc, "
                                  "secretbox and kms are not supported yet)")
        if not isinstance(body, dict) or set(body) != {"keys"} or not isinstance(body["keys"], list) \
                or not body["keys"]:
            fail(f"{at}.aesgcm.keys", "Required value: a list of {name, secret}")
        for j, item in enumerate(body["keys"]):
            kat = f"{at}.aesgcm.keys[{j}]"
            if not isinstance(item, dict) or set(item) != {"name", "secret"}:
                fail(kat, "expected {name, secret}")
            name, secret = item["name"], item["secret"]
            if not isinstance(name, str) or not name or ":" in name:
                fail(f"{kat}.name", "Required value: a non-empty name without ':'")
            if any(name == k for k, _ in keys):
                fail(f"{kat}.name", f"Duplicate value: {name!r}")
            try:
                key = base64.b64decode(str(secret), validate=True)
            except (binascii.Error, ValueError):
                fail(f"{kat}.secret", "must be base64")
            if len(key) not in KEY_SIZES:
                fail(f"{kat}.secret", f"must decode to 16, 24 or 32 bytes, got {len(key)} "
                                      "(generate one: head -c 32 /dev/urandom | base64)")
            keys.append((name, key))
            if write is None and j == 0:
                write = ("aesgcm", name)
    return Encryption(keys, write, identity, source)
