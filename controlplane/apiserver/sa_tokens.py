"""ServiceAccount tokens: issuing (TokenRequest) and authenticating them.

Kubernetes' bound service account tokens (KEP-1205), in small:
- a token is a JWT signed ES256 with the cluster's signing key (config
  `serviceAccounts.keyFile`, the same file on every replica: skiff/satoken.py), header
  `kid` = base64url(SHA-256 of the public key's DER), claims as kube-apiserver writes them:
  iss, sub `system:serviceaccount:<ns>:<name>`, aud, iat, nbf, exp, jti and
  `kubernetes.io: {namespace, serviceaccount: {name, uid}, pod: {name, uid}}`;
- it is issued by CreateToken (Kubernetes' serviceaccounts/NAME/token subresource): the
  node agent asks for one per pod, bound to the pod, for 3607 s, and refreshes it at 80 %
  of its life, as kubelet does;
- TokenAuthenticator.authenticate(token) -> Identity | None checks the signature, iss, aud,
  exp/nbf (with a small leeway for clock skew), and that the account and the pod still
  exist with the uids the token names (a token of a deleted and re-created account or pod
  stops working at once, as in Kubernetes); a pod whose deletion grace has run out no
  longer authenticates either (kube-apiserver: "bound pod is deleted and awaiting removal").

Lifetimes as in Kubernetes: default 3600 s, at least 600 s (serviceAccounts.minExpirationS
may lower it for tests), at most serviceAccounts.maxExpirationS (default 48 h; Kubernetes
has no cap unless --service-account-max-token-expiration is given).

Without a key file the replica issues no tokens (CreateToken: FAILED_PRECONDITION saying
so) and authenticates none. Keys are not rotated yet: one key signs and verifies.
"""

import base64
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import grpc
import jwt
from cryptography.hazmat.primitives import serialization

from controlplane.apiserver import guard
from skiff.api import service_pb2 as api
from skiff.api.identity import SA_PREFIX, serviceaccount_identity
from skiff.api.kinds import unwrap
from skiff.api.kinds.pod import POD
from skiff.api.kinds.serviceaccount import SERVICE_ACCOUNT
from skiff.satoken import DEFAULT_ISSUER

log = logging.getLogger("skiff.apiserver.sa_tokens")

ALGORITHM = "ES256"
DEFAULT_EXPIRATION_S = 3600
MIN_EXPIRATION_S = 600
MAX_EXPIRATION_S = 48 * 3600
LEEWAY_S = 60          # clock skew between replicas and the caller, as kube-apiserver allows


@dataclass(frozen=True)
class ServiceAccountsConfig:
    """The control-plane config's `serviceAccounts:` section (controlplane/config.py).

    key_file: the PEM EC P-256 private key that signs and verifies tokens ("" = no tokens);
    issuer: the tokens' iss (Kubernetes' --service-account-issuer);
    audiences: what a token must be for to authenticate to the API (--api-audiences;
      default: the issuer);
    min_expiration_s / max_expiration_s: the lifetimes a TokenRequest may ask for."""
    key_file: str = ""
    issuer: str = DEFAULT_ISSUER
    audiences: tuple = ()
    min_expiration_s: int = MIN_EXPIRATION_S
    max_expiration_s: int = MAX_EXPIRATION_S

    @property
    def api_audiences(self) -> tuple:
        return self.audiences or (self.issuer,)


def parse_config(doc, where: str, error) -> ServiceAccountsConfig:
    """The section from its YAML mapping; error(message) builds the config error to raise."""
    if doc is None:
        return ServiceAccountsConfig()
    known = {"keyFile", "issuer", "audiences", "minExpirationS", "maxExpirationS"}
    if not isinstance(doc, dict):
        raise error(f"{where}: expected a mapping")
    unknown = sorted(set(doc) - known)
    if unknown:
        raise error(f"{where}: unknown field(s) {', '.join(unknown)}")
    audiences = doc.get("audiences") or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences):
        raise error(f"{where}: audiences must be a list of strings")
    values = {}
    for key, default in (("minExpirationS", MIN_EXPIRATION_S), ("maxExpirationS", MAX_EXPIRATION_S)):
        value = doc.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise error(f"{where}: {key} must be a whole number of seconds > 0")
        values[key] = value
    if values["minExpirationS"] > values["maxExpirationS"]:
        raise error(f"{where}: minExpirationS must not exceed maxExpirationS")
    return ServiceAccountsConfig(key_file=str(doc.get("keyFile") or ""), issuer=str(doc.get("issuer") or DEFAULT_ISSUER),
                                 audiences=tuple(audiences), min_expiration_s=values["minExpirationS"],
                                 max_expiration_s=values["maxExpirationS"])


def dump_config(cfg: ServiceAccountsConfig) -> dict:
    doc = {"keyFile": cfg.key_file}
    if cfg.issuer != DEFAULT_ISSUER:
        doc["issuer"] = cfg.issuer
    if cfg.audiences:
        doc["audiences"] = list(cfg.audiences)
    if cfg.min_expiration_s != MIN_EXPIRATION_S:
        doc["minExpirationS"] = cfg.min_expiration_s
    if cfg.max_expiration_s != MAX_EXPIRATION_S:
        doc["maxExpirationS"] = cfg.max_expiration_s
    return doc


class TokenError(Exception):
    """A TokenRequest refused: code is the API status word (not_found, invalid, forbidden)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class TokenAuthenticator:
    """Issues and verifies tokens. get(kind_name, namespace, name) -> the stored object or
    None: this replica's applied state (the API's store), read at every authentication."""

    def __init__(self, settings: ServiceAccountsConfig, private_key, get, clock=time.time):
        self.settings = settings
        self._key = private_key
        self._public = private_key.public_key()
        der = self._public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
        self.get = get
        self._clock = clock

    # ------------------------------------------------------------ issuing

    def issue(self, namespace: str, name: str, *, audiences=(), expiration_s: int = 0,
              pod_name: str = "", pod_uid: str = "") -> tuple:
        """(token, expiry as unix seconds) for ServiceAccount namespace/name, bound to the pod
        when pod_name is given; TokenError when the request is refused."""
        s = self.settings
        expiration_s = expiration_s or DEFAULT_EXPIRATION_S
        if expiration_s < s.min_expiration_s:
            raise TokenError("invalid", f"spec.expirationSeconds: Invalid value: {expiration_s}: "
                                        f"may not specify a duration less than {s.min_expiration_s} seconds")
        expiration_s = min(expiration_s, s.max_expiration_s)
        sa = self.get(SERVICE_ACCOUNT.name, namespace, name)
        if sa is None:
            raise TokenError("not_found", f'serviceaccounts "{name}" not found')
        claims_k8s = {"namespace": namespace, "serviceaccount": {"name": name, "uid": sa.metadata.uid}}
        if pod_name:
            pod = self.get(POD.name, namespace, pod_name)
            if pod is None:
                raise TokenError("not_found", f'pods "{pod_name}" not found')
            if pod_uid and pod.metadata.uid != pod_uid:
                raise TokenError("conflict", f'the UID in the bound object reference ({pod_uid}) does not match '
                                             f'the UID in record ({pod.metadata.uid}); the object might have been '
                                             "deleted and then recreated")
            if (pod.spec.service_account_name or "default") != name:
                raise TokenError("invalid", f'cannot bind token for serviceaccount "{name}" to pod running with '
                                            f'different serviceaccount name "{pod.spec.service_account_name}"')
            claims_k8s["pod"] = {"name": pod_name, "uid": pod.metadata.uid}
        now = int(self._clock())
        exp = now + expiration_s
        claims = {"iss": s.issuer, "sub": f"{SA_PREFIX}{namespace}:{name}",
                  "aud": list(audiences) or list(s.api_audiences), "iat": now, "nbf": now, "exp": exp,
                  "jti": str(uuid.uuid4()), "kubernetes.io": claims_k8s}
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})
        return token, exp

    # ------------------------------------------------------------ authenticating

    def authenticate(self, token: str):
        """The Identity the token stands for, or None (bad signature, expired, wrong issuer
        or audience, account or bound pod gone or re-created)."""
        try:
            # Times are checked below against this authenticator's clock (PyJWT's own is time.time).
            claims = jwt.decode(token, self._public, algorithms=[ALGORITHM], issuer=self.settings.issuer,
                                audience=list(self.settings.api_audiences),
                                options={"require": ["exp", "iat", "iss", "sub", "aud"], "verify_exp": False,
                                         "verify_nbf": False, "verify_iat": False})
        except jwt.PyJWTError as exc:
            log.info("event=token_rejected reason=%s", type(exc).__name__)
            return None
        now = self._clock()
        try:
            exp, nbf = float(claims["exp"]), float(claims.get("nbf", claims["iat"]))
        except (TypeError, ValueError):
            return None
        if now > exp + LEEWAY_S or now < nbf - LEEWAY_S:
            log.info("event=token_rejected reason=expired_or_not_yet_valid")
            return None
        info = claims.get("kubernetes.io")
        if not isinstance(info, dict):
            return None
        ns = info.get("namespace")
        sa_claim = info.get("serviceaccount") or {}
        name = sa_claim.get("name")
        if not ns or not name or claims["sub"] != f"{SA_PREFIX}{ns}:{name}":
            return None
        sa = self.get(SERVICE_ACCOUNT.name, ns, name)
        if sa is None or sa.metadata.uid != sa_claim.get("uid"):
            log.info("event=token_rejected reason=serviceaccount_gone sa=%s/%s", ns, name)
            return None
        pod_claim = info.get("pod")
        if pod_claim:
            pod = self.get(POD.name, ns, pod_claim.get("name", ""))
            if pod is None or pod.metadata.uid != pod_claim.get("uid"):
                log.info("event=token_rejected reason=pod_gone pod=%s/%s", ns, pod_claim.get("name"))
                return None
            if pod.metadata.deletion_timestamp and _unix(pod.metadata.deletion_timestamp) < self._clock():
                return None
        return serviceaccount_identity(ns, name)


def _unix(rfc3339: str) -> float:
    try:
        return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def store_getter(store):
    """get(kind, ns, name) over the API's store (this replica's applied state)."""
    def get(kind_name, namespace, name):
        env = store.get((kind_name, namespace, name))
        return None if env is None else unwrap(env)[1]
    return get


def from_config(cfg, store):
    """The replica's TokenAuthenticator, or None when its config names no key file."""
    settings = getattr(cfg, "service_accounts", None)
    if settings is None or not settings.key_file:
        return None
    with open(settings.key_file, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    return TokenAuthenticator(settings, key, store_getter(store))


# ------------------------------------------------------------ the RPCs (ApiService delegates here)

_CODES = {"not_found": grpc.StatusCode.NOT_FOUND, "invalid": grpc.StatusCode.INVALID_ARGUMENT,
          "conflict": grpc.StatusCode.ABORTED, "forbidden": grpc.StatusCode.PERMISSION_DENIED}


def create_token(tokens, request, context):
    """CreateToken: a token for request.service_account, bound to the pod named. Who may ask
    was decided by the API's guard before this runs (RBAC's create serviceaccounts/token; an
    agent only for a pod bound to its node that runs as that account: authz/node.py)."""
    if tokens is None:
        context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                      "this control plane issues no ServiceAccount tokens: its config has no serviceAccounts.keyFile")
    if not request.namespace or not request.service_account:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "namespace and serviceAccount are required")
    try:
        token, exp = tokens.issue(request.namespace, request.service_account, audiences=tuple(request.audiences),
                                  expiration_s=int(request.expiration_seconds), pod_name=request.bound_pod_name,
                                  pod_uid=request.bound_pod_uid)
    except TokenError as exc:
        context.abort(_CODES.get(exc.code, grpc.StatusCode.UNKNOWN), str(exc))
    stamp = datetime.fromtimestamp(exp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return api.TokenResponse(token=token, expiration_timestamp=stamp,
                             expiration_seconds=exp - int(tokens._clock()))


def whoami(tokens, context):
    """WhoAmI (Kubernetes' SelfSubjectReview): the caller's identity as authentication sees it."""
    identity = guard.current_identity()   # authenticated (and impersonated) by the guard
    return api.WhoAmIResponse(username=identity.user, groups=list(identity.groups))
