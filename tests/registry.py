"""A minimal Docker Registry (HTTP API v2) for tests, that REQUIRES basic auth.

It serves one image, read-only, from a directory prepared by prepare_image() (a docker-archive,
the `docker save` format, turned into a registry's manifest and blobs):

- GET /v2/ → 200 when authorised, else 401 with `WWW-Authenticate: Basic realm="skiff-test"`
  (as a registry asks a client for credentials);
- GET|HEAD /v2/<name>/manifests/<tag or digest> → the image manifest (schema 2) with
  Docker-Content-Digest; GET|HEAD /v2/<name>/blobs/<digest> → the config or a gzipped layer;
- every other request, and any request without the right `Authorization: Basic`, is refused
  (401 with the registry's error body, UNAUTHORIZED).

Every request is appended to the log file as one JSON line (method, path, the Authorization
header it carried, the status sent), so a test can assert which credentials reached it.
Run as a script (stdlib only, so it can run inside a lab node's network namespace through
nsenter): python tests/registry.py --dir D --port P --user U --password W --log F --ready F.
"""

import argparse
import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import tarfile
import threading

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def prepare_image(archive: bytes, out_dir: str, repo: str, tag: str, env: dict | None = None) -> str:
    """Turn a docker-archive into out_dir/{manifests/<tag>, blobs/<digest>}; env adds variables
    to the image's config (so the image is new to an engine that has the archive's). Returns the
    manifest's digest."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        [entry] = json.load(tar.extractfile("manifest.json"))
        config = json.load(tar.extractfile(entry["Config"]))
        layers = [tar.extractfile(name).read() for name in entry["Layers"]]
    if env:
        config["config"]["Env"] = list(config["config"].get("Env") or []) + [f"{k}={v}" for k, v in env.items()]
    config_bytes = json.dumps(config, sort_keys=True).encode()
    blobs = {_digest(config_bytes): config_bytes}
    manifest_layers = []
    for layer in layers:
        gz = gzip.compress(layer, mtime=0)
        blobs[_digest(gz)] = gz
        manifest_layers.append({"mediaType": LAYER_TYPE, "size": len(gz), "digest": _digest(gz)})
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "size": len(config_bytes), "digest": _digest(config_bytes)},
        "layers": manifest_layers,
    }, sort_keys=True).encode()
    os.makedirs(os.path.join(out_dir, "blobs"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "manifests"), exist_ok=True)
    for digest, data in blobs.items():
        with open(os.path.join(out_dir, "blobs", digest), "wb") as f:
            f.write(data)
    with open(os.path.join(out_dir, "manifests", tag), "wb") as f:
        f.write(manifest)
    with open(os.path.join(out_dir, "repository"), "w", encoding="utf-8") as f:
        f.write(repo)
    return _digest(manifest)


class Registry(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, directory, user, password, log_path):
        super().__init__(address, Handler)
        self.directory = directory
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.log_path = log_path
        self.log_lock = threading.Lock()
        with open(os.path.join(directory, "repository"), encoding="utf-8") as f:
            self.repo = f.read().strip()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Registry

    def log_message(self, fmt, *args):   # the JSON log below is the record
        pass

    def do_GET(self):
        self._serve(body=True)

    def do_HEAD(self):
        self._serve(body=False)

    def _record(self, status: int) -> None:
        line = json.dumps({"method": self.command, "path": self.path,
                           "authorization": self.headers.get("Authorization", ""), "status": status})
        with self.server.log_lock, open(self.server.log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def _send(self, status, data=b"", headers=None, body=True):
        self._record(status)
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.end_headers()
        if body and data:
            self.wfile.write(data)

    def _error(self, status, code, message, body=True, headers=None):
        data = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
        self._send(status, data, {"Content-Type": "application/json", **(headers or {})}, body)

    def _serve(self, body: bool):
        if self.headers.get("Authorization", "") != self.server.expected:
            self._error(401, "UNAUTHORIZED", "authentication required", body,
                        {"WWW-Authenticate": 'Basic realm="skiff-test"'})
            return
        path = self.path.split("?", 1)[0]
        if path in ("/v2", "/v2/"):
            self._send(200, b"{}", {"Content-Type": "application/json"}, body)
            return
        prefix = f"/v2/{self.server.repo}/"
        if not path.startswith(prefix):
            self._error(404, "NAME_UNKNOWN", "repository name not known to registry", body)
            return
        what, _, ref = path[len(prefix):].partition("/")
        directory = self.server.directory
        if what == "manifests":
            name = ref
            if ref.startswith("sha256:"):   # by digest: the one manifest, if it is that one
                name = next((t for t in os.listdir(os.path.join(directory, "manifests"))
                             if _digest(_read(directory, "manifests", t)) == ref), "")
            data = _read(directory, "manifests", name) if name else None
            if data is None:
                self._error(404, "MANIFEST_UNKNOWN", "manifest unknown", body)
                return
            self._send(200, data, {"Content-Type": MANIFEST_TYPE, "Docker-Content-Digest": _digest(data)}, body)
        elif what == "blobs":
            data = _read(directory, "blobs", ref)
            if data is None:
                self._error(404, "BLOB_UNKNOWN", "blob unknown to registry", body)
                return
            self._send(200, data, {"Content-Type": "application/octet-stream", "Docker-Content-Digest": ref}, body)
        else:
            self._error(405, "UNSUPPORTED", "the operation is unsupported", body)


def _read(directory, kind, name):
    if not name or "/" in name or name.startswith("."):
        return None
    try:
        with open(os.path.join(directory, kind, name), "rb") as f:
            return f.read()
    except OSError:
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--ready", required=True, help="a file written once the port is bound")
    args = ap.parse_args(argv)
    server = Registry((args.host, args.port), args.dir, args.user, args.password, args.log)
    with open(args.ready, "w", encoding="utf-8") as f:
        f.write(str(os.getpid()))
    server.serve_forever()


if __name__ == "__main__":
    main()
