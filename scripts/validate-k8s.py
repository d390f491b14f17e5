#!/usr/bin/env python3
"""Validates Kubernetes manifests offline: built-in kinds against the Kubernetes JSON schemas
of PyPI's kubernetes-validate (strict: unknown fields are errors), prometheus-operator and KEDA
resources against the @kubernetes-models npm packages (scripts/k8s-validate). Usage:

    validate-k8s.py [--kubernetes-version 1.33.0] FILE_OR_DIR...

Prints one line per document and exits 1 when any is invalid. Needs the venv of
scripts/python-env.sh and `npm ci` in scripts/k8s-validate (scripts/node-env.sh)."""
import argparse
import json
import pathlib
import subprocess
import sys

import kubernetes_validate
import yaml

CRD_GROUPS = ("monitoring.coreos.com/", "keda.sh/")
HERE = pathlib.Path(__file__).resolve().parent


def manifests(paths):
    for p in paths:
        path = pathlib.Path(p)
        files = sorted(path.rglob("*.yaml")) + sorted(path.rglob("*.yml")) if path.is_dir() else [path]
        for f in files:
            for i, doc in enumerate(yaml.safe_load_all(f.read_text())):
                if doc is not None:
                    name = doc.get("metadata", {}).get("name") if isinstance(doc, dict) else None
                    kind = doc.get("kind") if isinstance(doc, dict) else None
                    yield f"{f}#{i} {kind}/{name}", doc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubernetes-version", default="1.33.0")
    ap.add_argument("paths", nargs="+")
    args = ap.parse_args()
    failed = 0
    custom = []
    for origin, doc in manifests(args.paths):
        if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
            print(f"{origin}: not a Kubernetes object (no apiVersion/kind)")
            failed += 1
            continue
        if str(doc.get("apiVersion", "")).startswith(CRD_GROUPS):
            custom.append({"origin": origin, "doc": doc})
            continue
        try:
            kubernetes_validate.validate(doc, args.kubernetes_version, strict=True)
            print(f"{origin}: ok")
        except kubernetes_validate.ValidationError as e:
            print(f"{origin}: {'.'.join(str(p) for p in e.path)}: {e.message}")
            failed += 1
        except kubernetes_validate.utils.SchemaNotFoundError as e:
            print(f"{origin}: {e}")
            failed += 1
    if custom:
        node = subprocess.run(
            ["node", str(HERE / "k8s-validate" / "validate.mjs")],
            input=json.dumps(custom), text=True, capture_output=True, cwd=HERE / "k8s-validate",
        )
        sys.stdout.write(node.stdout)
        sys.stderr.write(node.stderr)
        if node.returncode != 0:
            failed += 1
    print(f"validate-k8s: {'FAILED' if failed else 'all valid'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
