"""skiff/grpc-health: a real gRPC health server (grpc.health.v1) in an image built from
this host's Python (skiff/lab/pyimage.py), for grpc probes in tests and demos.

The server (/app/server.py, run as the image's command) listens on 0.0.0.0:$PORT
(default 9000) and answers Health/Check and Health/Watch for the overall server ("")
and for each name in $SERVICES (comma-separated). Every one of them has the status
written in $STATUS_FILE (default /tmp/health-status: a ServingStatus name, SERVING,
NOT_SERVING, UNKNOWN or SERVICE_UNKNOWN), read every 0.2 s; while the file is absent
the status is $INITIAL_STATUS (default SERVING). So a test flips a pod's health with
`skiff exec POD -- sh -c 'echo NOT_SERVING > /tmp/health-status'`, and a new container
(a restart) starts from $INITIAL_STATUS again, its /tmp being fresh. SIGTERM stops the
server at once (exit 0). Each change of status is logged on stdout.

Load it into a lab with `skiff lab load` on an archive from write_archive().
"""

import os

from skiff.lab import pyimage

TAG = "skiff/grpc-health:latest"
PACKAGES = ("grpc", "google", "grpc_health", "typing_extensions")

SERVER = b'''"""skiff/grpc-health's server: see skiff/lab/grpcimage.py."""
import os
import signal
import sys
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

PORT = int(os.environ.get("PORT", "9000"))
STATUS_FILE = os.environ.get("STATUS_FILE", "/tmp/health-status")
INITIAL = os.environ.get("INITIAL_STATUS", "SERVING")
SERVICES = [""] + [s for s in os.environ.get("SERVICES", "").split(",") if s]
Status = health_pb2.HealthCheckResponse.ServingStatus


def wanted():
    try:
        with open(STATUS_FILE) as f:
            name = f.read().strip()
    except FileNotFoundError:
        name = INITIAL
    return name if name in Status.keys() else "UNKNOWN"


def main():
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(f"0.0.0.0:{PORT}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    current = None
    server.start()
    print(f"listening port={PORT} services={','.join(SERVICES[1:]) or '-'}", flush=True)
    while True:
        name = wanted()
        if name != current:
            for service in SERVICES:
                servicer.set(service, Status.Value(name))
            print(f"status={name}", flush=True)
            current = name
        if stop.wait(0.2):
            break
    server.stop(0)
    sys.exit(0)


main()
'''


def archive(tag: str = TAG) -> bytes:
    """The docker-archive of the image (deterministic for this host)."""
    return pyimage.python_archive(packages=PACKAGES, extra_files={"app/server.py": SERVER}, tag=tag,
                                  cmd=["python3", "/app/server.py"], env={"PYTHONUNBUFFERED": "1"})


def write_archive(path: str, tag: str = TAG) -> str:
    """archive(tag) written to path (atomically); returns path."""
    data = archive(tag)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    return path
