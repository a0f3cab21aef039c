#!/usr/bin/env bash
# End-to-end test of agyn-secrets on a throw-away kind cluster.
#
# Builds the image, creates a cluster from kind-config.yaml, deploys OpenBao
# (dev mode) and PostgreSQL, installs the Helm chart, configures an
# organization through the API and proves that a labelled pod starts with its
# secrets injected, that a rotated remote value reaches a restarted pod, and
# that a pod naming an unknown secret is denied.
#
# Needs: docker, kind, kubectl, helm, jq, curl, openssl.
# Environment:
#   KEEP_CLUSTER=1      keep the cluster afterwards (default: delete it)
#   CLUSTER_NAME        kind cluster name (default: agyn-secrets-e2e)
#   KIND_NODE_IMAGE     node image for kind, e.g. kindest/node:v1.31.0
#   IMAGE_REPO/IMAGE_TAG  name of the locally built image (agyn-secrets:e2e)
#   API_PORT            local port for the API port-forward (default: 18080)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
E2E="$ROOT/tests/e2e"
CLUSTER_NAME="${CLUSTER_NAME:-agyn-secrets-e2e}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-}"
IMAGE_REPO="${IMAGE_REPO:-agyn-secrets}"
IMAGE_TAG="${IMAGE_TAG:-e2e}"
IMAGE="$IMAGE_REPO:$IMAGE_TAG"
API_PORT="${API_PORT:-18080}"
KEEP_CLUSTER="${KEEP_CLUSTER:-0}"

NS=agyn-secrets          # the product's namespace (and Helm release name)
DEPS_NS=agyn-e2e         # OpenBao and PostgreSQL
TEAM_NS=team-a           # the workload namespace bound to organization acme
ORG=acme

WORK="$(mktemp -d)"
CLUSTER_CREATED=0
PF_PID=""
API=""
TOKEN=""

log() { printf '\n==> %s\n' "$*" >&2; }
fail() {
  printf '\nFAIL: %s\n' "$*" >&2
  exit 1
}

cleanup() {
  local rc=$?
  set +e
  if [[ -n "$PF_PID" ]]; then
    kill "$PF_PID" 2>/dev/null
    wait "$PF_PID" 2>/dev/null
  fi
  if ((rc != 0)) && ((CLUSTER_CREATED)); then
    log "diagnostics"
    kubectl get pods -A -o wide
    kubectl -n "$NS" describe pods -l app.kubernetes.io/name=agyn-secrets | tail -n 60
    kubectl -n "$NS" logs -l app.kubernetes.io/name=agyn-secrets --tail=100 --prefix
    kubectl -n "$TEAM_NS" get events --sort-by=.lastTimestamp | tail -n 30
  fi
  if ((CLUSTER_CREATED)); then
    if [[ "$KEEP_CLUSTER" == 1 ]]; then
      log "keeping cluster $CLUSTER_NAME (kubectl context kind-$CLUSTER_NAME); delete it with: kind delete cluster --name $CLUSTER_NAME"
    else
      log "deleting cluster $CLUSTER_NAME"
      kind delete cluster --name "$CLUSTER_NAME"
    fi
  fi
  rm -rf "$WORK"
  if ((rc == 0)); then
    printf '\nPASS: agyn-secrets end-to-end\n' >&2
  fi
  exit "$rc"
}
trap cleanup EXIT

# api METHOD PATH [JSON]: call the API with the admin token; print the body,
# fail with the body on any non-2xx status.
api() {
  local method=$1 path=$2 body=${3:-}
  local args=(-sS -X "$method" -H "Authorization: Bearer $TOKEN" -w '\n%{http_code}')
  if [[ -n "$body" ]]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$body")
  fi
  local out status
  out="$(curl "${args[@]}" "$API$path")"
  status="${out##*$'\n'}"
  out="${out%$'\n'*}"
  if [[ "$status" != 2?? ]]; then
    fail "$method $path returned $status: $out"
  fi
  printf '%s\n' "$out"
}

# running_pod NAMESPACE SELECTOR: name of a running pod that is not being
# deleted.
running_pod() {
  kubectl -n "$1" get pods -l "$2" -o json |
    jq -r '[.items[] | select(.metadata.deletionTimestamp == null and .status.phase == "Running")][0].metadata.name // empty'
}

# expect_env POD VAR VALUE
expect_env() {
  local got
  got="$(kubectl -n "$TEAM_NS" exec "$1" -- printenv "$2")" || fail "pod $1 has no env $2"
  [[ "$got" == "$3" ]] || fail "pod $1: $2 is not the expected value"
  log "pod $1: $2 has the expected value"
}

bao() {
  kubectl -n "$DEPS_NS" exec deploy/openbao -- bao "$@"
}

# ---------------------------------------------------------------------------
log "checking tools"
for tool in docker kind kubectl helm jq curl openssl; do
  command -v "$tool" >/dev/null || fail "$tool is required (see tests/e2e/README.md)"
done
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  fail "kind cluster $CLUSTER_NAME already exists; delete it (kind delete cluster --name $CLUSTER_NAME) or set CLUSTER_NAME"
fi

log "building image $IMAGE"
docker build -t "$IMAGE" "$ROOT"

log "creating kind cluster $CLUSTER_NAME"
kind_args=(create cluster --name "$CLUSTER_NAME" --config "$ROOT/kind-config.yaml" --wait 180s)
if [[ -n "$KIND_NODE_IMAGE" ]]; then
  kind_args+=(--image "$KIND_NODE_IMAGE")
fi
CLUSTER_CREATED=1
kind "${kind_args[@]}"
kubectl config use-context "kind-$CLUSTER_NAME" >/dev/null
kind load docker-image "$IMAGE" --name "$CLUSTER_NAME"

# PostgreSQL rather than SQLite: the chart runs two replicas, which must share
# one database, as they do in production.
log "deploying OpenBao (dev mode) and PostgreSQL"
PG_PASSWORD="$(openssl rand -hex 16)"
kubectl create namespace "$DEPS_NS"
kubectl -n "$DEPS_NS" create secret generic postgres --from-literal=password="$PG_PASSWORD"
kubectl apply -f "$E2E/deps.yaml"
kubectl -n "$DEPS_NS" rollout status deploy/openbao --timeout=180s
kubectl -n "$DEPS_NS" rollout status deploy/postgres --timeout=180s

log "creating the key ring, database and TLS Secrets in $NS"
kubectl create namespace "$NS"
# One key-encryption key, "k1" (base64 of 32 random bytes), and the primary
# pointer naming it.
KEK="$(openssl rand -base64 32)"
kubectl -n "$NS" create secret generic agyn-secrets-keyring \
  --from-literal=k1="$KEK" \
  --from-literal=primary=k1
kubectl -n "$NS" create secret generic agyn-secrets-database \
  --from-literal=url="postgres://agyn:$PG_PASSWORD@postgres.$DEPS_NS.svc.cluster.local:5432/agyn?sslmode=disable"

mkdir -p "$WORK/certs"
USER_ID="$(id -u)"
GROUP_ID="$(id -g)"
docker run --rm --user "$USER_ID:$GROUP_ID" -v "$WORK/certs:/out" "$IMAGE" \
  certs generate --service agyn-secrets --namespace "$NS" --out /out
for f in ca.crt tls.crt tls.key ca-bundle.b64; do
  [[ -s "$WORK/certs/$f" ]] || fail "certs generate did not write $f"
done
kubectl -n "$NS" create secret tls agyn-secrets-tls \
  --cert="$WORK/certs/tls.crt" --key="$WORK/certs/tls.key"

log "installing the chart"
CA_BUNDLE="$(tr -d '\n' <"$WORK/certs/ca-bundle.b64")"
helm upgrade --install agyn-secrets "$ROOT/charts/agyn-secrets" \
  --namespace "$NS" \
  --set image.repository="$IMAGE_REPO" \
  --set image.tag="$IMAGE_TAG" \
  --set image.pullPolicy=Never \
  --set logFormat=text \
  --set tls.existingSecret=agyn-secrets-tls \
  --set-string tls.caBundle="$CA_BUNDLE" \
  --wait --timeout 5m
kubectl -n "$NS" rollout status deploy/agyn-secrets --timeout=180s

log "creating an admin token"
TOKEN="$(kubectl -n "$NS" exec deploy/agyn-secrets -- agyn-secrets token create --admin | tr -d '[:space:]')"
[[ -n "$TOKEN" ]] || fail "token create printed no token"

log "port-forwarding the API to 127.0.0.1:$API_PORT"
kubectl -n "$NS" port-forward svc/agyn-secrets "$API_PORT:8080" >"$WORK/port-forward.log" 2>&1 &
PF_PID=$!
API="http://127.0.0.1:$API_PORT"
for _ in $(seq 1 30); do
  if curl -fsS "$API/healthz" >/dev/null 2>&1; then
    break
  fi
  sleep 1
done
if ! curl -fsS "$API/readyz" >/dev/null; then
  cat "$WORK/port-forward.log" >&2
  fail "API not ready through the port-forward"
fi

# ---------------------------------------------------------------------------
log "configuring organization $ORG"
STRIPE_VALUE="sk_test_$(openssl rand -hex 12)"
DB_VALUE_1="db-$(openssl rand -hex 12)"
DB_VALUE_2="db-$(openssl rand -hex 12)"

body="$(jq -nc --arg n "$ORG" '{name:$n}')"
api POST /v1/organizations "$body" >/dev/null
body="$(jq -nc --arg v "$STRIPE_VALUE" '{name:"stripe-api-key",storage:"local",value:$v}')"
api POST "/v1/organizations/$ORG/secrets" "$body" >/dev/null

bao kv put -mount=secret prod/db password="$DB_VALUE_1" >/dev/null
api POST "/v1/organizations/$ORG/secrets" \
  '{"name":"vault-token","storage":"local","value":"root"}' >/dev/null
body="$(jq -nc --arg a "http://openbao.$DEPS_NS.svc:8200" \
  '{name:"vault-dev",kind:"vault",address:$a,auth:{method:"token",token_secret:"vault-token"}}')"
provider="$(api POST "/v1/organizations/$ORG/providers" "$body")"
PROVIDER_ID="$(jq -r '.id' <<<"$provider")"
[[ -n "$PROVIDER_ID" && "$PROVIDER_ID" != null ]] || fail "provider has no id"
body="$(jq -nc --arg p "$PROVIDER_ID" \
  '{name:"db-password",storage:"remote",provider_id:$p,remote_path:"secret/data/prod/db",remote_key:"password"}')"
api POST "/v1/organizations/$ORG/secrets" "$body" >/dev/null
api POST "/v1/organizations/$ORG/image-pull-secrets" \
  '{"name":"ghcr","registry":"ghcr.io","username":"bot","password_secret":"stripe-api-key"}' >/dev/null
body="$(jq -nc --arg o "$ORG" '{organization:$o}')"
api PUT "/v1/namespaces/$TEAM_NS" "$body" >/dev/null

# The metadata API never returns a value.
listing="$(api GET "/v1/organizations/$ORG/secrets")"
if grep -qF "$STRIPE_VALUE" <<<"$listing"; then
  fail "the secrets listing contains a plaintext value"
fi

# ---------------------------------------------------------------------------
log "deploying a labelled workload in $TEAM_NS"
kubectl apply -f "$E2E/workload.yaml"
kubectl -n "$TEAM_NS" rollout status deploy/demo --timeout=180s
POD="$(running_pod "$TEAM_NS" app=demo)"
[[ -n "$POD" ]] || fail "no running demo pod"

expect_env "$POD" STRIPE_KEY "$STRIPE_VALUE"
expect_env "$POD" DB_PASSWORD "$DB_VALUE_1"

kubectl -n "$TEAM_NS" get pod "$POD" -o json |
  jq -e '[.spec.imagePullSecrets[]?.name] | index("agyn-pull-ghcr") != null' >/dev/null ||
  fail "pod $POD has no imagePullSecrets agyn-pull-ghcr"
kubectl -n "$TEAM_NS" get secret agyn-pull-ghcr -o json |
  jq -e '.type == "kubernetes.io/dockerconfigjson" and .metadata.labels["app.kubernetes.io/managed-by"] == "agyn-secrets"' >/dev/null ||
  fail "Secret agyn-pull-ghcr is missing or not managed by agyn-secrets"
kubectl -n "$TEAM_NS" get pod "$POD" -o json |
  jq -e '.metadata.annotations["secrets.agyn.io/injected"] // "" | contains("stripe-api-key@")' >/dev/null ||
  fail "pod $POD lacks the secrets.agyn.io/injected annotation"
log "pod $POD uses image pull secret agyn-pull-ghcr"

# ---------------------------------------------------------------------------
log "rotating the remote value in OpenBao and restarting the workload"
bao kv put -mount=secret prod/db password="$DB_VALUE_2" >/dev/null
kubectl -n "$TEAM_NS" rollout restart deploy/demo
kubectl -n "$TEAM_NS" rollout status deploy/demo --timeout=180s
kubectl -n "$TEAM_NS" wait --for=delete "pod/$POD" --timeout=120s
NEW_POD="$(running_pod "$TEAM_NS" app=demo)"
[[ -n "$NEW_POD" && "$NEW_POD" != "$POD" ]] || fail "no new demo pod after the restart"
expect_env "$NEW_POD" DB_PASSWORD "$DB_VALUE_2"
expect_env "$NEW_POD" STRIPE_KEY "$STRIPE_VALUE"

# ---------------------------------------------------------------------------
log "a pod naming an unknown secret is denied"
if out="$(kubectl apply -f "$E2E/bad-pod.yaml" 2>&1)"; then
  fail "pod with an unknown secret was admitted: $out"
fi
grep -qF "secret \"nope\" not found in organization \"$ORG\"" <<<"$out" ||
  fail "unexpected denial message: $out"
log "denied with: $out"

log "an unlabelled pod is not sent to the webhook"
kubectl apply --dry-run=server -o json -f "$E2E/plain-pod.yaml" |
  jq -e '[.spec.containers[].env[]?.name] | index("STRIPE_KEY") == null' >/dev/null ||
  fail "an unlabelled pod was mutated"
