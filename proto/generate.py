"""Generate the Python stubs for proto/skiff/api/*.proto into skiff/api/.

    python proto/generate.py          # regenerate (commit the result)
    python proto/generate.py --check  # exit 1 if the committed stubs are stale

Needs grpcio-tools (the version pinned in pyproject.toml's test extra), since
generated code differs between versions.
"""

import filecmp
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTOS = ["skiff/api/objects.proto", "skiff/api/node.proto", "skiff/api/service.proto"]
OUTPUTS = ["skiff/api/objects_pb2.py", "skiff/api/objects_pb2.pyi",
           "skiff/api/node_pb2.py", "skiff/api/node_pb2.pyi", "skiff/api/node_pb2_grpc.py",
           "skiff/api/service_pb2.py", "skiff/api/service_pb2.pyi",
           "skiff/api/service_pb2_grpc.py"]


def generate(out_dir: str) -> None:
    from grpc_tools import protoc
    args = ["protoc", f"-I{os.path.join(ROOT, 'proto')}", f"--python_out={out_dir}",
            f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}"]
    args += [os.path.join(ROOT, "proto", p) for p in PROTOS]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Messages-only files get an empty *_grpc.py; we do not keep those.
    for p in PROTOS:
        stray = p.replace(".proto", "_pb2_grpc.py")
        if stray not in OUTPUTS and os.path.exists(os.path.join(out_dir, stray)):
            os.remove(os.path.join(out_dir, stray))


def stale() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="skiff-proto-") as tmp:
        generate(tmp)
        return [o for o in OUTPUTS
                if not os.path.exists(os.path.join(ROOT, o))
                or not filecmp.cmp(os.path.join(tmp, o), os.path.join(ROOT, o), shallow=False)]


def main() -> int:
    if "--check" in sys.argv:
        bad = stale()
        if bad:
            print("stale generated files (run python proto/generate.py): " + ", ".join(bad))
            return 1
        print("generated stubs are current")
        return 0
    with tempfile.TemporaryDirectory(prefix="skiff-proto-") as tmp:
        generate(tmp)
        for o in OUTPUTS:
            shutil.copyfile(os.path.join(tmp, o), os.path.join(ROOT, o))
    print("regenerated " + ", ".join(OUTPUTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
