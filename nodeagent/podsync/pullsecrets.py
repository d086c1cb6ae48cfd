"""Registry credentials for a pod's image pulls: its imagePullSecrets, matched as the kubelet does.

A pod's spec.imagePullSecrets name Secrets of its namespace, of type
kubernetes.io/dockerconfigjson (key .dockerconfigjson: {"auths": {REGISTRY: ENTRY}}) or
kubernetes.io/dockercfg (key .dockercfg: {REGISTRY: ENTRY}); an ENTRY has username and
password, or auth (base64 "user:password", which wins), optionally identitytoken or
registrytoken.

Matching is Kubernetes' BasicDockerKeyring (pkg/credentialprovider/keyring.go):
- a REGISTRY key is a URL without its scheme, "/v1/" or "/v2/" ("https://r.example:5000/v2/"
  is r.example:5000; "quay.io/team" keeps its path);
- a key matches an image when the ports are equal, the host has as many dot-separated parts
  and each part matches as a glob ("*.example.com" matches "r.example.com" and nothing
  deeper), and the key's path is a prefix of the image's repository path;
- matching keys are tried most specific first (the keys sorted in reverse order: exact
  hosts before their wildcards, "quay.io/team" before "quay.io"), each key's credentials in
  the order the secrets were listed. An image with no registry host is Docker Hub's, which
  also takes the credentials of "index.docker.io" (the key "https://index.docker.io/v1/").

Pure, except Keyring.for_pod, which reads the Secrets through get_secret(ns, name).
Credentials are never logged.
"""

import base64
import binascii
import fnmatch
import json
from dataclasses import dataclass, field

DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"
DOCKER_CFG = "kubernetes.io/dockercfg"
DEFAULT_REGISTRY = "index.docker.io"


@dataclass(frozen=True)
class Credential:
    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""

    def auth_config(self, server: str) -> dict:
        """The engine's auth_config for a pull from server (docker's AuthConfig fields)."""
        out = {"serveraddress": server}
        if self.username or self.password:
            out.update(username=self.username, password=self.password)
        if self.identity_token:
            out["identitytoken"] = self.identity_token
        if self.registry_token:
            out["registrytoken"] = self.registry_token
        return out


@dataclass
class Keyring:
    creds: dict = field(default_factory=dict)     # key -> [Credential], in the order added

    def add_config(self, config: dict) -> None:
        """Add the entries of a .dockercfg-shaped map {registry: entry}."""
        for registry, entry in config.items():
            if not isinstance(entry, dict):
                continue
            key = registry_key(registry)
            if key:
                self.creds.setdefault(key, []).append(_credential(entry))

    def add_secret(self, secret) -> bool:
        """Add a Secret's entries; False when it holds none skiff can read (wrong type or
        data), which the kubelet ignores the same way."""
        try:
            if secret.type == DOCKER_CONFIG_JSON and ".dockerconfigjson" in secret.data:
                auths = json.loads(secret.data[".dockerconfigjson"]).get("auths") or {}
            elif secret.type == DOCKER_CFG and ".dockercfg" in secret.data:
                auths = json.loads(secret.data[".dockercfg"])
            else:
                return False
        except (ValueError, AttributeError):
            return False
        if not isinstance(auths, dict):
            return False
        self.add_config(auths)
        return True

    def lookup(self, image: str) -> list:
        """[(key, Credential)] for image, to be tried in order; [] when no key matches."""
        repo = repository(image)
        out = []
        for key in sorted(self.creds, reverse=True):
            if urls_match(key, repo):
                out.extend((key, c) for c in self.creds[key])
        if not out and _is_default_registry(repo) and DEFAULT_REGISTRY in self.creds:
            out = [(DEFAULT_REGISTRY, c) for c in self.creds[DEFAULT_REGISTRY]]
        return out

    @classmethod
    def for_pod(cls, pod, get_secret) -> tuple:
        """(Keyring of the pod's pull secrets, [names of those that could not be read])."""
        ring, missing = cls(), []
        for ref in pod.spec.image_pull_secrets:
            try:
                secret = get_secret(pod.metadata.namespace, ref.name)
            except Exception:  # noqa: BLE001 - the API unreachable or refusing: as the kubelet, pull anyway
                secret = None
            if secret is None:
                missing.append(ref.name)
            else:
                ring.add_secret(secret)
        return ring, missing


def _credential(entry: dict) -> Credential:
    username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    auth = entry.get("auth")
    if auth:
        try:
            user, sep, pw = base64.b64decode(str(auth), validate=False).decode("utf-8").partition(":")
            if sep:
                username, password = user, pw
        except (binascii.Error, UnicodeDecodeError):
            pass
    return Credential(username, password, str(entry.get("identitytoken") or ""),
                      str(entry.get("registrytoken") or ""))


def registry_key(registry: str) -> str:
    """A dockercfg key as the keyring indexes it: host[:port][/path], no scheme, /v1/ or /v2/."""
    text = registry.strip()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
            break
    host, slash, path = text.partition("/")
    path = slash + path
    if path.startswith(("/v1/", "/v2/")):
        path = path[3:]
    path = path.rstrip("/") if path != "/" else ""
    return host + path


def repository(image: str) -> str:
    """The image's repository with its registry, without tag or digest, as the kubelet
    normalizes it: "busybox" is docker.io/library/busybox."""
    name = image.split("@", 1)[0]
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        name = name[:colon]
    first, _, rest = name.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"):
        rest = name if "/" in name else f"library/{name}"
        first = "docker.io"
    return f"{first}/{rest}"


def _split(url: str) -> tuple:
    """(host parts, port, path) of a schemeless URL."""
    host, slash, path = url.partition("/")
    host, _, port = host.partition(":")
    return host.split("."), port, slash + path


def urls_match(key: str, target: str) -> bool:
    """Kubernetes' URLsMatch: same port, same number of host parts each matching as a glob,
    and the key's path a prefix of the target's."""
    key_parts, key_port, key_path = _split(key)
    parts, port, path = _split(target)
    if key_port != port or len(key_parts) != len(parts) or not path.startswith(key_path):
        return False
    return all(fnmatch.fnmatchcase(p, k) for k, p in zip(key_parts, parts))


def _is_default_registry(repo: str) -> bool:
    return repo.startswith("docker.io/")
