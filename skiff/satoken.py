"""ServiceAccount tokens: what the control plane, the node agent and the lab share.

- MOUNT_PATH: where a pod's containers find their account's credentials (Kubernetes'
  path): `token` (a bound JWT, refreshed by the agent), `ca.crt` (the cluster CA the API
  serves with), `namespace` (the pod's namespace).
- The signing key: one EC P-256 private key in PEM, in a file every control-plane replica
  reads (config `serviceAccounts.keyFile`, controlplane/config.py). All replicas must have
  the same key, or a token minted by one is refused by the others. `ensure_signing_key`
  makes it once (mode 0600) and leaves an existing one alone; the lab calls it, an
  installer does the same on the first control-plane machine and copies the file to the
  others (`python -m skiff.satoken PATH`).
"""

import os
import sys

MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"   # kube-apiserver's usual --service-account-issuer
# What the agent asks for: kubelet asks for 3607 s (an hour and 7 s, so a token is told apart
# from a user's one-hour token in the audit log) and refreshes at 80 % of the lifetime.
AGENT_EXPIRATION_S = 3607
REFRESH_FRACTION = 0.8


def automount(pod) -> bool:
    """Whether the pod's containers get the token. The ServiceAccount admission plugin writes
    the account's choice into spec.automountServiceAccountToken when the pod leaves it unset,
    so the pod alone decides here (unset: true, Kubernetes' default)."""
    spec = pod.spec
    return not spec.HasField("automount_service_account_token") or spec.automount_service_account_token


def ensure_signing_key(path: str) -> bool:
    """Create the EC P-256 signing key at path (0600) unless a file is there; True if created."""
    if os.path.exists(path):
        return False
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return True


if __name__ == "__main__":   # python -m skiff.satoken PATH
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m skiff.satoken KEY_FILE")
    print("created" if ensure_signing_key(sys.argv[1]) else "exists", sys.argv[1])
