"""Join tokens: the format, where they are stored, and how they are checked.

Format (Swarm's SWMTKN-1-<CA digest>-<secret>, k3s' K10<sha256 of CA>::server:<secret>,
kubeadm's <id>.<secret> + --discovery-token-ca-cert-hash in one string):

    SKIFF1-<sha256 hex of the CA certificate's DER>-<id>.<secret>

id is 6 and secret 16 characters of [a-z0-9] (kubeadm's bootstrap token). The digest
lets a joining agent pin the CA before it sends anything secret; the id names the
stored token; the secret proves the holder was given it.

Stored as kubeadm stores bootstrap tokens: a Secret `bootstrap-token-<id>` in
kube-system of type bootstrap.kubernetes.io/token, but holding only the SHA-256 of the
secret (data `token-secret-sha256`, never the secret itself), `token-id`, `expiration`
(RFC 3339, absent = never) and `description`.
"""

import datetime
import hashlib
import hmac
import re
import secrets
import string

PREFIX = "SKIFF1"
NAMESPACE = "kube-system"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
NAME_PREFIX = "bootstrap-token-"
_ALPHABET = string.ascii_lowercase + string.digits
_TOKEN = re.compile(r"^SKIFF1-([0-9a-f]{64})-([a-z0-9]{6})\.([a-z0-9]{16})$")


class TokenError(ValueError):
    pass


def new_id_and_secret() -> tuple[str, str]:
    return ("".join(secrets.choice(_ALPHABET) for _ in range(6)),
            "".join(secrets.choice(_ALPHABET) for _ in range(16)))


def format_token(ca_digest: str, token_id: str, secret: str) -> str:
    hexdigest = ca_digest.split(":", 1)[1] if ca_digest.startswith("sha256:") else ca_digest
    return f"{PREFIX}-{hexdigest}-{token_id}.{secret}"


def parse_token(token: str) -> tuple[str, str, str]:
    """(CA digest as sha256:<hex>, id, secret); TokenError naming the expected form."""
    m = _TOKEN.match((token or "").strip())
    if not m:
        raise TokenError("not a skiff join token: expected SKIFF1-<64 hex digits of the CA digest>-"
                         "<6 characters a-z0-9>.<16 characters a-z0-9> (from `skiff token create`)")
    return "sha256:" + m.group(1), m.group(2), m.group(3)


def secret_name(token_id: str) -> str:
    return NAME_PREFIX + token_id


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def stored_data(token_id: str, secret: str, ttl_s: float | None, description: str = "",
                now: datetime.datetime | None = None) -> dict:
    """The data of the token's Secret (str values; the caller encodes them)."""
    data = {"token-id": token_id, "token-secret-sha256": hash_secret(secret)}
    if ttl_s:
        now = now or datetime.datetime.now(datetime.timezone.utc)
        data["expiration"] = (now + datetime.timedelta(seconds=ttl_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if description:
        data["description"] = description
    return data


def expiration(data: dict) -> datetime.datetime | None:
    text = data.get("expiration")
    if not text:
        return None
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def check(data: dict | None, token_id: str, secret: str, now: datetime.datetime | None = None) -> None:
    """Raise TokenError saying why the stored token `data` does not admit (id, secret)."""
    if data is None:
        raise TokenError(f"join token {token_id} does not exist (deleted, or never created)")
    if data.get("token-id") != token_id:
        raise TokenError(f"join token {token_id} does not exist")
    if not hmac.compare_digest(data.get("token-secret-sha256", ""), hash_secret(secret)):
        raise TokenError(f"join token {token_id}: wrong secret")
    exp = expiration(data)
    if exp is not None and (now or datetime.datetime.now(datetime.timezone.utc)) >= exp:
        raise TokenError(f"join token {token_id} expired at {data['expiration']}")


def parse_ttl(text: str) -> float:
    """'24h', '30m', '90s', '2h30m', '0' (never expires) -> seconds (kubeadm's --ttl)."""
    text = text.strip()
    if text == "0":
        return 0.0
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not text or not m:
        raise TokenError(f"--ttl {text!r}: expected a duration like 24h, 30m, 90s or 0 (never)")
    h, mi, s = (int(x or 0) for x in m.groups())
    return float(h * 3600 + mi * 60 + s)


def create(client, ttl_s: float | None, description: str = "") -> str:
    """Store a new token through client (a skiff.client.Client with TLS credentials, whose
    CA is the digest's) and return its text."""
    from skiff.api import objects_pb2 as pb
    if client.tls is None:
        raise TokenError("join tokens need a TLS cluster (the client has no CA)")
    token_id, secret = new_id_and_secret()
    s = pb.Secret(api_version="v1", kind="Secret", type=SECRET_TYPE)
    s.metadata.name, s.metadata.namespace = secret_name(token_id), NAMESPACE
    for k, v in stored_data(token_id, secret, ttl_s, description).items():
        s.data[k] = v.encode()
    client.create(s)
    from skiff.pki import certs
    return format_token(certs.ca_digest(client.tls.ca), token_id, secret)
