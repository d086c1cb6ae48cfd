"""The encryption config file's format (Kubernetes' EncryptionConfiguration) on the
writing side: what the lab, the installer and `skiff secrets-encrypt new-config` write.
The control plane reads and validates it (controlplane/store/encryption.py, which
documents the format); this module only makes new files, so that skiff/ need not
import the control plane.
"""

import base64
import os

import yaml

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"


def new_key() -> str:
    """A fresh AES-256 key as the file holds it (base64 of 32 random bytes)."""
    return base64.b64encode(os.urandom(32)).decode()


def new_config(key_name: str = "key1") -> str:
    """A new config file's text: one fresh aesgcm key that encrypts, and identity after it
    to read Secrets stored in clear before encryption was turned on."""
    return yaml.safe_dump({
        "apiVersion": API_VERSION, "kind": KIND,
        "resources": [{"resources": ["secrets"],
                       "providers": [{"aesgcm": {"keys": [{"name": key_name, "secret": new_key()}]}},
                                     {"identity": {}}]}],
    }, sort_keys=False)


def write_new(path: str, key_name: str = "key1") -> bool:
    """Create path (mode 0600) with new_config() unless it exists; True if it was created.
    The file holds the cluster's Secret keys: every replica needs the same one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(new_config(key_name))
    return True
