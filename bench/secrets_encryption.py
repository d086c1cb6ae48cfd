"""Benchmark: what encrypting Secrets at rest costs (docs/secrets-encryption.md).

1. In process: the store's sealing of one Secret write (1 KiB in 10 keys), the same write
   when the content is unchanged (decrypt + compare, the stored ciphertext kept), opening one
   Secret for a read, a read without encryption (a copy), and what any other write pays
   (one byte compared).
2. With --cluster: a 3-replica loopback control plane (ControlPlane, like the tests), first
   with the encryption config's identity provider first (stored in clear), then with aesgcm
   first; --writes sequential updates of a Secret (new 1 KiB content each) and of a ConfigMap
   of the same size through the API: median and p95 latency per write.

It reports; it never fails on a figure. Run the cluster part under the machine's heavy lock:

    .venv/bin/python bench/secrets_encryption.py [--cluster] [--writes 300]
"""

import argparse
import os
import statistics
import sys
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from controlplane.store import encryption  # noqa: E402
from controlplane.store.commands import Apply, Create  # noqa: E402
from controlplane.store.sealing import Sealer  # noqa: E402
from skiff.api import kinds  # noqa: E402
from skiff.api import objects_pb2 as pb  # noqa: E402
from skiff.encryption_config import new_config  # noqa: E402
from skiff.lab.controlplane import ControlPlane  # noqa: E402
from tests.helpers import free_port_block, remove, temp_dir  # noqa: E402


def per_call_us(fn, n=20000) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def env(msg) -> bytes:
    return kinds.encode(kinds.wrap(msg))


def secret(i=0):
    return pb.Secret(metadata=pb.ObjectMeta(name="s", namespace="default"), type="Opaque",
                     data={f"k{k}": bytes([48 + (i + k) % 10]) * 100 for k in range(10)})


def in_process() -> list:
    sealer = Sealer(encryption.parse(yaml.safe_load(new_config())))
    create = Create("c", env(secret()), "now", "u")
    stored = pb.Object()
    stored.ParseFromString(sealer.seal_command(create, lambda k: None).object)
    pod = Create("p", env(pb.Pod(metadata=pb.ObjectMeta(name="p", namespace="default"))), "now", "u")
    plain = pb.Object(secret=secret())
    return [
        ("seal a Secret write (1 KiB, 10 keys)", per_call_us(lambda: sealer.seal_command(create, lambda k: None))),
        ("seal an unchanged write (decrypt, compare, keep)",
         per_call_us(lambda: sealer.seal_command(Apply("a", create.object, "n", "u"), lambda k: stored))),
        ("open a Secret for a read", per_call_us(lambda: sealer.open_env(stored))),
        ("a read without encryption (copy)", per_call_us(lambda: Sealer().open_env(plain))),
        ("any other write (kind check)", per_call_us(lambda: sealer.seal_command(pod, lambda k: None))),
    ]


IDENTITY_FIRST = """apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - identity: {}
"""


def cluster_round(encrypted: bool, writes: int) -> dict:
    base = free_port_block(6)
    cp = ControlPlane(temp_dir("bench-enc"), replicas=3, api_base_port=base, raft_base_port=base + 3)
    try:
        os.makedirs(cp.lab_dir, exist_ok=True)
        if not encrypted:
            with open(cp.encryption_config_path, "w", encoding="utf-8") as f:
                f.write(IDENTITY_FIRST)
        cp.write_configs()
        cp.start_all()
        cp.wait_ready(60)
        c = cp.client()
        out = {}
        try:
            for what, make in (("Secret", secret),
                               ("ConfigMap", lambda i: pb.ConfigMap(
                                   metadata=pb.ObjectMeta(name="s", namespace="default"),
                                   binary_data=dict(secret(i).data)))):
                c.create(make(0))
                for i in range(20):                       # warm-up
                    c.update(make(i + 1))
                lat = []
                for i in range(writes):
                    t0 = time.perf_counter()
                    c.update(make(i))
                    lat.append((time.perf_counter() - t0) * 1000)
                lat.sort()
                out[what] = (statistics.median(lat), lat[int(len(lat) * 0.95) - 1])
        finally:
            c.close()
        return out
    finally:
        cp.stop_all()
        remove(cp.lab_dir)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cluster", action="store_true", help="also measure writes on a 3-replica cluster")
    ap.add_argument("--writes", type=int, default=300)
    args = ap.parse_args()
    print(f"CPUs: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}\n")
    print("| in process | µs per call |\n|---|---|")
    for name, us in in_process():
        print(f"| {name} | {us:.1f} |")
    if args.cluster:
        print(f"\n| sequential updates ({args.writes}) | Secret median / p95 ms | ConfigMap median / p95 ms |")
        print("|---|---|---|")
        for encrypted in (False, True):
            r = cluster_round(encrypted, args.writes)
            label = "aesgcm first (encrypted)" if encrypted else "identity first (clear)"
            print(f"| {label} | {r['Secret'][0]:.2f} / {r['Secret'][1]:.2f} | "
                  f"{r['ConfigMap'][0]:.2f} / {r['ConfigMap'][1]:.2f} |")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
