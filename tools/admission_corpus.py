"""Run a directory of real-world manifests through skiff's admission, as `skiff apply`
would without a cluster (decode, defaults, validation, and the server's "not supported
yet" refusals), and count per kind.

    .venv/bin/python tools/admission_corpus.py DIR [--kind StatefulSet] [--show-refused]

For each document: `accepted`, `refused` (with the first error: a field skiff does not
support yet, or a mistake in the manifest), or `unknown kind`. Use it on a corpus of
manifests you did not write (a checkout of kubernetes/website's content/en/examples,
kubernetes/examples, ...) to see what a user's files meet. It reports; it never fails.
"""

import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from skiff.api import manifests, unsupported  # noqa: E402
from skiff.api.errors import ValidationError  # noqa: E402
from skiff.api.local_admission import admit_locally  # noqa: E402


def verdict(where, doc):
    """(kind name, "accepted" | "refused" | "unknown kind", detail)."""
    kind_name = doc.get("kind") if isinstance(doc.get("kind"), str) else "?"
    try:
        kind, msg = manifests.parse_object(doc, where)
    except manifests.ManifestError as e:
        detail = str(e).split(": ", 2)[-1]
        unknown = any(err.path in ("kind", "apiVersion") for err in getattr(e, "errors", None) or [])
        return kind_name, "unknown kind" if unknown else "refused", detail
    try:
        admit_locally(kind, msg)
    except ValidationError as e:
        return kind.name, "refused", str(e.errors[0])
    # The API server's "not supported yet" plugin (skiff/api/unsupported.py) refuses
    # decoded fields nothing honours yet; `skiff apply` meets it, so the count must too.
    errors = unsupported.check(kind, msg)
    if errors:
        return kind.name, "refused", str(errors[0])
    return kind.name, "accepted", ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("directory")
    ap.add_argument("--kind", help="only documents of this kind")
    ap.add_argument("--show-refused", action="store_true", help="print every refused document and why")
    args = ap.parse_args()
    counts = collections.defaultdict(collections.Counter)
    refused = []
    for where, text in manifests.read_sources([args.directory], recursive=True):
        try:
            docs = manifests.load_located(text, where)
        except manifests.ManifestError as e:
            counts["(unparsable file)"]["refused"] += 1
            refused.append((where, str(e)))
            continue
        for doc_where, doc in docs:
            kind_name, result, detail = verdict(doc_where, doc)
            if args.kind and kind_name != args.kind:
                continue
            counts[kind_name][result] += 1
            if result == "refused":
                refused.append((doc_where, detail))
    print("| kind | accepted | refused | unknown kind |")
    print("|---|---:|---:|---:|")
    total = collections.Counter()
    for kind_name in sorted(counts):
        c = counts[kind_name]
        total.update(c)
        print(f"| {kind_name} | {c['accepted']} | {c['refused']} | {c['unknown kind']} |")
    print(f"| **all** | {total['accepted']} | {total['refused']} | {total['unknown kind']} |")
    if args.show_refused:
        for where, detail in refused:
            print(f"\n{where}\n  {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
