#!/usr/bin/env bash
# End-to-end test of agyn-secrets on a throw-away kind cluster.
#
# Builds the image, generates the webhook's certificates and the API server's
# client certificate, creates a cluster from kind-config.yaml whose API server
# presents that certificate to the webhook, deploys OpenBao (dev mode) and
# PostgreSQL, installs the Helm chart with caller authentication, configures
# an organization through the API and proves that:
# - a labelled pod starts with its secrets, delivered through a managed
#   Secret (the pod spec refers to it and holds no value);
# - a pod asking for delivery env is admitted (the API server authenticated
#   itself) and carries the value inline;
# - a workload asking for delivery exec gets its value in its command's
#   environment, fetched at start from the exec listener (port 8444), while
#   the value is in no pod object, no Secret and no log; a pod asking for exec
#   without a command is denied;
# - a caller without a client certificate gets 401 from /mutate, and one with
#   a certificate from another CA does not get through the TLS handshake;
# - the product may touch Secrets (and get pods) only in the namespaces bound
#   to it, and may create TokenReviews, nothing more, cluster-wide;
# - a rotated value reaches a restarted pod; after a rotation the Deployment
#   that opted in to restart on rotation rolls out to the new version and the
#   other keeps its pods; a secret fenced to another namespace is refused;
#   a pod naming an unknown secret is denied, and an unlabelled pod is left
#   alone.
#
# Needs: docker, kind, kubectl, helm, jq, curl, openssl, base64.
# Environment:
#   KEEP_CLUSTER=1      keep the cluster afterwards (default: delete it)
#   CLUSTER_NAME        kind cluster name (default: agyn-secrets-e2e)
#   KIND_NODE_IMAGE     node image for kind, e.g. kindest/node:v1.31.0
#   IMAGE_REPO/IMAGE_TAG  name of the locally built image (agyn-secrets:e2e)
#   API_PORT            local port for the API port-forward (default: 18080)
#   WEBHOOK_PORT        local port for the webhook port-forward (default: 18443)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
E2E="$ROOT/tests/e2e"
# kind-config.yaml mounts certs/kube-apiserver into the control-plane node.
CERTS="$ROOT/certs"
CLUSTER_NAME="${CLUSTER_NAME:-agyn-secrets-e2e}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-}"
IMAGE_REPO="${IMAGE_REPO:-agyn-secrets}"
IMAGE_TAG="${IMAGE_TAG:-e2e}"
IMAGE="$IMAGE_REPO:$IMAGE_TAG"
API_PORT="${API_PORT:-18080}"
WEBHOOK_PORT="${WEBHOOK_PORT:-18443}"
KEEP_CLUSTER="${KEEP_CLUSTER:-0}"

NS=agyn-secrets          # the product's namespace (and Helm release name)
DEPS_NS=agyn-e2e         # OpenBao and PostgreSQL
TEAM_NS=team-a           # bound to organization acme, with the product's RoleBinding
NOBIND_NS=team-b         # bound to acme, without the RoleBinding
ORG=acme
SA_USER="system:serviceaccount:$NS:agyn-secrets"
# Where the API server finds admission-config.yaml and its kubeconfig (the
# containerPath of the mount in kind-config.yaml).
APISERVER_CONFIG_DIR=/etc/kubernetes/agyn-secrets
WEBHOOK_HOST="agyn-secrets.$NS.svc"

WORK="$(mktemp -d)"
CLUSTER_CREATED=0
PF_PIDS=()
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
  for pid in ${PF_PIDS[@]+"${PF_PIDS[@]}"}; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if ((rc != 0)) && ((CLUSTER_CREATED)); then
    log "diagnostics"
    kubectl get pods -A -o wide
    kubectl -n "$NS" describe pods -l app.kubernetes.io/name=agyn-secrets | tail -n 60
    kubectl -n "$NS" logs -l app.kubernetes.io/name=agyn-secrets --tail=100 --prefix
    kubectl -n kube-system logs -l component=kube-apiserver --tail=40 --prefix
    kubectl -n "$TEAM_NS" get events --sort-by=.lastTimestamp | tail -n 30
    kubectl -n "$TEAM_NS" logs -l app=exec-demo --all-containers --tail=40 --prefix
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

# port_forward TARGET LOCAL:REMOTE: start a port-forward in the background.
port_forward() {
  kubectl -n "$NS" port-forward "$1" "$2" >>"$WORK/port-forward.log" 2>&1 &
  PF_PIDS+=("$!")
}

# running_pod NAMESPACE SELECTOR: name of a running pod that is not being
# deleted.
running_pod() {
  kubectl -n "$1" get pods -l "$2" -o json |
    jq -r '[.items[] | select(.metadata.deletionTimestamp == null and .status.phase == "Running")][0].metadata.name // empty'
}

# expect_env POD VAR VALUE: the running container's environment has it.
expect_env() {
  local got
  got="$(kubectl -n "$TEAM_NS" exec "$1" -- printenv "$2")" || fail "pod $1 has no env $2"
  [[ "$got" == "$3" ]] || fail "pod $1: $2 is not the expected value"
  log "pod $1: $2 has the expected value"
}

# expect_no_value POD VALUE...: the pod object, as the API serves it, holds
# none of the values.
expect_no_value() {
  local pod=$1 json value
  shift
  json="$(kubectl -n "$TEAM_NS" get pod "$pod" -o json)"
  for value in "$@"; do
    if grep -qF "$value" <<<"$json"; then
      fail "pod $pod: a secret value is in the pod object"
    fi
  done
  log "pod $pod: the pod object holds no secret value"
}

# secret_ref POD VAR SECRET VALUE: VAR of container app comes from key SECRET
# of a managed Secret agyn-env-<16 hex> that holds VALUE there, and has no
# inline value. Prints the Secret's name.
secret_ref() {
  local pod=$1 var=$2 key=$3 value=$4 entry name got
  entry="$(kubectl -n "$TEAM_NS" get pod "$pod" -o json |
    jq -c --arg v "$var" '[.spec.containers[] | select(.name == "app") | .env[]? | select(.name == $v)][0] // empty')"
  [[ -n "$entry" ]] || fail "pod $pod has no env entry $var"
  jq -e 'has("value") | not' <<<"$entry" >/dev/null || fail "pod $pod: $var has an inline value"
  name="$(jq -r '.valueFrom.secretKeyRef.name // empty' <<<"$entry")"
  [[ "$name" =~ ^agyn-env-[0-9a-f]{16}$ ]] ||
    fail "pod $pod: $var does not refer to a Secret agyn-env-<16 hex>: $(jq -c '.valueFrom // {}' <<<"$entry")"
  [[ "$(jq -r '.valueFrom.secretKeyRef.key' <<<"$entry")" == "$key" ]] ||
    fail "pod $pod: $var does not refer to key $key of Secret $name"
  kubectl -n "$TEAM_NS" get secret "$name" -o json |
    jq -e --arg k "$key" '.type == "Opaque" and .metadata.labels["app.kubernetes.io/managed-by"] == "agyn-secrets" and .data[$k] != null' >/dev/null ||
    fail "Secret $name is missing, not Opaque, not managed by agyn-secrets, or has no key $key"
  got="$(kubectl -n "$TEAM_NS" get secret "$name" -o json | jq -r --arg k "$key" '.data[$k]' | base64 -d)"
  [[ "$got" == "$value" ]] || fail "Secret $name: key $key does not hold the expected value"
  log "pod $pod: $var comes from key $key of Secret $name"
  printf '%s\n' "$name"
}

# can_i VERB RESOURCE NAMESPACE: kubectl's yes/no for the product's
# ServiceAccount ("no" comes with a non-zero exit).
can_i() {
  kubectl auth can-i "$1" "$2" -n "$3" --as="$SA_USER" 2>/dev/null || true
}

bao() {
  kubectl -n "$DEPS_NS" exec deploy/openbao -- bao "$@"
}

# ---------------------------------------------------------------------------
log "checking tools"
for tool in docker kind kubectl helm jq curl openssl base64; do
  command -v "$tool" >/dev/null || fail "$tool is required (see tests/e2e/README.md)"
done
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  fail "kind cluster $CLUSTER_NAME already exists; delete it (kind delete cluster --name $CLUSTER_NAME) or set CLUSTER_NAME"
fi

log "building image $IMAGE"
docker build -t "$IMAGE" "$ROOT"

# Before the cluster: the API server reads its admission configuration, the
# kubeconfig and the client certificate in it when it starts.
log "generating certificates into $CERTS"
USER_ID="$(id -u)"
GROUP_ID="$(id -g)"
mkdir -p "$CERTS"
rm -f "$CERTS"/{ca.crt,ca.key,tls.crt,tls.key,ca-bundle.b64,client.crt,client.key}
rm -rf "$CERTS/kube-apiserver"
docker run --rm --user "$USER_ID:$GROUP_ID" -v "$CERTS:/out" "$IMAGE" \
  certs generate --client --service agyn-secrets --namespace "$NS" \
  --apiserver-config-dir "$APISERVER_CONFIG_DIR" --out /out
for f in ca.crt tls.crt tls.key ca-bundle.b64 client.crt client.key \
  kube-apiserver/webhook-kubeconfig.yaml kube-apiserver/admission-config.yaml; do
  [[ -s "$CERTS/$f" ]] || fail "certs generate --client did not write $f"
done
grep -qF "$APISERVER_CONFIG_DIR/webhook-kubeconfig.yaml" "$CERTS/kube-apiserver/admission-config.yaml" ||
  fail "admission-config.yaml does not point at $APISERVER_CONFIG_DIR/webhook-kubeconfig.yaml"
grep -qF "$WEBHOOK_HOST" "$CERTS/kube-apiserver/webhook-kubeconfig.yaml" ||
  fail "webhook-kubeconfig.yaml has no user named $WEBHOOK_HOST"

log "creating kind cluster $CLUSTER_NAME"
kind_args=(create cluster --name "$CLUSTER_NAME" --config "$ROOT/kind-config.yaml" --wait 180s)
if [[ -n "$KIND_NODE_IMAGE" ]]; then
  kind_args+=(--image "$KIND_NODE_IMAGE")
fi
CLUSTER_CREATED=1
# From the repository root: kind resolves the relative hostPath of
# kind-config.yaml (certs/kube-apiserver) against the directory it runs in.
(cd "$ROOT" && kind "${kind_args[@]}")
kubectl config use-context "kind-$CLUSTER_NAME" >/dev/null
docker exec "$CLUSTER_NAME-control-plane" \
  grep -qF -- "--admission-control-config-file=$APISERVER_CONFIG_DIR/admission-config.yaml" \
  /etc/kubernetes/manifests/kube-apiserver.yaml ||
  fail "the API server does not run with --admission-control-config-file"
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

log "creating the workload namespaces $TEAM_NS and $NOBIND_NS"
kubectl apply -f "$E2E/namespaces.yaml"

log "creating the key ring, database, TLS and client CA Secrets in $NS"
kubectl create namespace "$NS"
# One key-encryption key, "k1" (base64 of 32 random bytes), and the primary
# pointer naming it.
KEK="$(openssl rand -base64 32)"
kubectl -n "$NS" create secret generic agyn-secrets-keyring \
  --from-literal=k1="$KEK" \
  --from-literal=primary=k1
kubectl -n "$NS" create secret generic agyn-secrets-database \
  --from-literal=url="postgres://agyn:$PG_PASSWORD@postgres.$DEPS_NS.svc.cluster.local:5432/agyn?sslmode=disable"
kubectl -n "$NS" create secret tls agyn-secrets-tls \
  --cert="$CERTS/tls.crt" --key="$CERTS/tls.key"
# The CA that signed the API server's client certificate.
kubectl -n "$NS" create secret generic agyn-secrets-client-ca \
  --from-file=ca.crt="$CERTS/ca.crt"

log "installing the chart"
CA_BUNDLE="$(tr -d '\n' <"$CERTS/ca-bundle.b64")"
helm upgrade --install agyn-secrets "$ROOT/charts/agyn-secrets" \
  --namespace "$NS" \
  --set image.repository="$IMAGE_REPO" \
  --set image.tag="$IMAGE_TAG" \
  --set image.pullPolicy=Never \
  --set logFormat=text \
  --set tls.existingSecret=agyn-secrets-tls \
  --set-string tls.caBundle="$CA_BUNDLE" \
  --set webhook.clientCA.enabled=true \
  --set webhook.clientCA.existingSecret=agyn-secrets-client-ca \
  --set "rbac.namespaces={$TEAM_NS}" \
  --wait --timeout 5m
kubectl -n "$NS" rollout status deploy/agyn-secrets --timeout=180s

log "creating an admin token"
TOKEN="$(kubectl -n "$NS" exec deploy/agyn-secrets -- agyn-secrets token create --admin | tr -d '[:space:]')"
[[ -n "$TOKEN" ]] || fail "token create printed no token"

log "port-forwarding the API to 127.0.0.1:$API_PORT and the webhook to 127.0.0.1:$WEBHOOK_PORT"
port_forward svc/agyn-secrets "$API_PORT:8080"
port_forward deploy/agyn-secrets "$WEBHOOK_PORT:8443"
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
log "the product may touch Secrets only where a RoleBinding allows it"
for ns in kube-system default "$NOBIND_NS"; do
  for verb in get list create delete; do
    answer="$(can_i "$verb" secrets "$ns")"
    [[ "$answer" == no ]] || fail "the product's ServiceAccount may $verb secrets in $ns ($answer)"
  done
done
answer="$(kubectl auth can-i list secrets --all-namespaces --as="$SA_USER" 2>/dev/null || true)"
[[ "$answer" == no ]] || fail "the product's ServiceAccount may list secrets cluster-wide ($answer)"
for verb in get list create update delete; do
  answer="$(can_i "$verb" secrets "$TEAM_NS")"
  [[ "$answer" == yes ]] || fail "the product's ServiceAccount may not $verb secrets in $TEAM_NS ($answer)"
done
for verb in get list; do
  answer="$(can_i "$verb" pods "$TEAM_NS")"
  [[ "$answer" == yes ]] || fail "the product's ServiceAccount may not $verb pods in $TEAM_NS ($answer)"
done
for ns in kube-system default "$NOBIND_NS"; do
  answer="$(can_i get pods "$ns")"
  [[ "$answer" == no ]] || fail "the product's ServiceAccount may get pods in $ns ($answer)"
done
log "secrets: yes in $TEAM_NS; no in kube-system, default, $NOBIND_NS and cluster-wide"
# Delivery exec: TokenReviews are cluster-scoped; SubjectAccessReviews (the
# rest of system:auth-delegator) are not granted.
answer="$(kubectl auth can-i create tokenreviews.authentication.k8s.io --as="$SA_USER" 2>/dev/null || true)"
[[ "$answer" == yes ]] || fail "the product's ServiceAccount may not create tokenreviews ($answer)"
answer="$(kubectl auth can-i create subjectaccessreviews.authorization.k8s.io --as="$SA_USER" 2>/dev/null || true)"
[[ "$answer" == no ]] || fail "the product's ServiceAccount may create subjectaccessreviews ($answer)"
log "cluster-wide: create tokenreviews, and nothing else"

# ---------------------------------------------------------------------------
log "configuring organization $ORG"
STRIPE_VALUE_1="sk_test_$(openssl rand -hex 12)"
STRIPE_VALUE_2="sk_test_$(openssl rand -hex 12)"
DB_VALUE_1="db-$(openssl rand -hex 12)"
DB_VALUE_2="db-$(openssl rand -hex 12)"
# Used by the exec workload only, so that no managed Secret holds it.
EXEC_VALUE="exec_$(openssl rand -hex 12)"

body="$(jq -nc --arg n "$ORG" '{name:$n}')"
api POST /v1/organizations "$body" >/dev/null
body="$(jq -nc --arg v "$STRIPE_VALUE_1" '{name:"stripe-api-key",storage:"local",value:$v}')"
api POST "/v1/organizations/$ORG/secrets" "$body" >/dev/null
body="$(jq -nc --arg v "$EXEC_VALUE" '{name:"exec-only-key",storage:"local",value:$v}')"
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
# The answer says whether the product has what it needs in the namespace.
out="$(api PUT "/v1/namespaces/$TEAM_NS" "$body")"
jq -e '.access.ok == true' <<<"$out" >/dev/null ||
  fail "binding $TEAM_NS (RoleBinding from rbac.namespaces) does not report access: $out"
# team-b has no RoleBinding: binding it succeeds, and the answer says so.
out="$(api PUT "/v1/namespaces/$NOBIND_NS" "$body")"
jq -e '.access.ok == false and (.access.message // "" | test("rolebinding"; "i"))' <<<"$out" >/dev/null ||
  fail "binding $NOBIND_NS (no RoleBinding there) did not report the missing RoleBinding: $out"
log "binding $NOBIND_NS answered: $out"

# The metadata API never returns a value.
listing="$(api GET "/v1/organizations/$ORG/secrets")"
if grep -qF "$STRIPE_VALUE_1" <<<"$listing"; then
  fail "the secrets listing contains a plaintext value"
fi

# ---------------------------------------------------------------------------
log "deploying a labelled workload in $TEAM_NS (default delivery: secret)"
kubectl apply -f "$E2E/workload.yaml"
kubectl -n "$TEAM_NS" rollout status deploy/demo --timeout=180s
POD="$(running_pod "$TEAM_NS" app=demo)"
[[ -n "$POD" ]] || fail "no running demo pod"

expect_env "$POD" STRIPE_KEY "$STRIPE_VALUE_1"
expect_env "$POD" DB_PASSWORD "$DB_VALUE_1"
STRIPE_SECRET_1="$(secret_ref "$POD" STRIPE_KEY stripe-api-key "$STRIPE_VALUE_1")"
secret_ref "$POD" DB_PASSWORD db-password "$DB_VALUE_1" >/dev/null
expect_no_value "$POD" "$STRIPE_VALUE_1" "$DB_VALUE_1"

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
log "a pod asking for delivery env is admitted: the API server presented its client certificate"
kubectl apply -f "$E2E/env-pod.yaml"
kubectl -n "$TEAM_NS" wait --for=condition=Ready pod/env-delivery --timeout=120s
kubectl -n "$TEAM_NS" get pod env-delivery -o json |
  jq -e --arg v "$STRIPE_VALUE_1" \
    '[.spec.containers[] | select(.name == "app") | .env[]? | select(.name == "STRIPE_KEY")][0] | .value == $v and (has("valueFrom") | not)' >/dev/null ||
  fail "pod env-delivery does not carry STRIPE_KEY inline"
expect_env env-delivery STRIPE_KEY "$STRIPE_VALUE_1"
kubectl -n "$TEAM_NS" delete pod env-delivery --wait=false >/dev/null

# ---------------------------------------------------------------------------
log "a workload asking for delivery exec gets its value at start, from the exec listener"
kubectl apply -f "$E2E/exec-workload.yaml"
kubectl -n "$TEAM_NS" rollout status deploy/exec-demo --timeout=180s
EXEC_POD="$(running_pod "$TEAM_NS" app=exec-demo)"
[[ -n "$EXEC_POD" ]] || fail "no running exec-demo pod"

# What the webhook changed: an init container copies the wrapper from the
# product's image, the command runs through the wrapper, a projected token
# for audience agyn-secrets is mounted, and the env holds settings, no value.
kubectl -n "$TEAM_NS" get pod "$EXEC_POD" -o json >"$WORK/exec-pod.json"
jq -e --arg image "$IMAGE" '
  [.spec.initContainers[]? | select(.name == "agyn-secrets-exec")][0] // {}
  | .image == $image and .command == ["/usr/local/bin/agyn-secrets-exec", "install", "/agyn-secrets"]' \
  "$WORK/exec-pod.json" >/dev/null ||
  fail "pod $EXEC_POD has no init container agyn-secrets-exec installing the wrapper from $IMAGE"
jq -e '[.spec.containers[] | select(.name == "app")][0].command == ["/agyn-secrets/agyn-secrets", "exec", "--", "/bin/sleep", "86400"]' \
  "$WORK/exec-pod.json" >/dev/null ||
  fail "pod $EXEC_POD: the command does not run through the wrapper: $(jq -c '[.spec.containers[] | {name, command}]' "$WORK/exec-pod.json")"
jq -e --arg url "https://$WEBHOOK_HOST:8444" '
  [.spec.containers[] | select(.name == "app")][0] as $c
  | ([$c.env[]? | {(.name): .value}] | add // {}) as $env
  | $env.AGYN_EXEC_URL == $url and $env.AGYN_EXEC_CONTAINER == "app" and ($env.AGYN_EXEC_CA // "") != ""
    and ([$c.env[]?.name] | index("EXEC_KEY") == null)' \
  "$WORK/exec-pod.json" >/dev/null ||
  fail "pod $EXEC_POD: container app lacks AGYN_EXEC_URL ($WEBHOOK_HOST:8444), AGYN_EXEC_CA or AGYN_EXEC_CONTAINER, or has EXEC_KEY in its spec"
jq -e '[.spec.volumes[]?.projected.sources[]?.serviceAccountToken // empty
        | select(.audience == "agyn-secrets" and .expirationSeconds == 600)] | length == 1' \
  "$WORK/exec-pod.json" >/dev/null ||
  fail "pod $EXEC_POD has no projected service account token for audience agyn-secrets (600 s)"
jq -e '.metadata.annotations["secrets.agyn.io/injected"] // "" | contains("exec-only-key@")' \
  "$WORK/exec-pod.json" >/dev/null || fail "pod $EXEC_POD lacks the secrets.agyn.io/injected annotation"

# The wrapper replaced itself with the command, so PID 1 of the container is
# the command, with the value in its environment. A process that kubectl exec
# starts gets the container's configured env instead, which holds no value.
got="$(kubectl -n "$TEAM_NS" exec "$EXEC_POD" -c app -- cat /proc/1/environ | tr '\0' '\n' | sed -n 's/^EXEC_KEY=//p')" ||
  fail "pod $EXEC_POD: could not read the command's environment"
[[ "$got" == "$EXEC_VALUE" ]] || fail "pod $EXEC_POD: the command's environment does not hold the value of EXEC_KEY"
if kubectl -n "$TEAM_NS" exec "$EXEC_POD" -c app -- printenv EXEC_KEY >/dev/null 2>&1; then
  fail "pod $EXEC_POD: EXEC_KEY is in the container's configured environment"
fi
log "pod $EXEC_POD: the command has EXEC_KEY; the container's configured env has not"

# Nowhere the Kubernetes API keeps it: not in the pod object, not in any
# Secret of any namespace (as is or base64-encoded), not in the logs.
EXEC_VALUE_B64="$(printf '%s' "$EXEC_VALUE" | base64 | tr -d '\n')"
kubectl -n "$TEAM_NS" get pod "$EXEC_POD" -o yaml >"$WORK/exec-pod.yaml"
kubectl get secrets -A -o yaml >"$WORK/all-secrets.yaml"
kubectl -n "$TEAM_NS" logs "$EXEC_POD" --all-containers >"$WORK/exec-pod.log"
kubectl -n "$NS" logs -l app.kubernetes.io/name=agyn-secrets --tail=-1 >"$WORK/product.log"
for f in exec-pod.yaml all-secrets.yaml exec-pod.log product.log; do
  if grep -qF -e "$EXEC_VALUE" -e "$EXEC_VALUE_B64" "$WORK/$f"; then
    fail "the value of exec-only-key is in $f"
  fi
done
log "the value of exec-only-key is in no pod object, no Secret and no log"

log "a pod asking for delivery exec without a command is denied"
if out="$(kubectl apply -f "$E2E/exec-no-command-pod.yaml" 2>&1)"; then
  fail "pod exec-no-command was admitted: $out"
fi
grep -qi 'command' <<<"$out" || fail "the denial does not say that the command is missing: $out"
log "denied with: $out"

# ---------------------------------------------------------------------------
log "a forged AdmissionReview without a client certificate earns nothing"
# review UID DELIVERY_ANNOTATIONS: an AdmissionReview for a labelled pod in
# team-a (dry run, so that an accepted one has no side effect).
review() {
  jq -nc --arg uid "$1" --arg ns "$TEAM_NS" --argjson ann "$2" '{
    apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview",
    request: {
      uid: $uid,
      kind: {group: "", version: "v1", kind: "Pod"},
      resource: {group: "", version: "v1", resource: "pods"},
      requestKind: {group: "", version: "v1", kind: "Pod"},
      requestResource: {group: "", version: "v1", resource: "pods"},
      namespace: $ns, operation: "CREATE", dryRun: true,
      userInfo: {username: "someone"},
      object: {
        apiVersion: "v1", kind: "Pod",
        metadata: {name: "forged", namespace: $ns,
                   labels: {"secrets.agyn.io/inject": "true"}, annotations: $ann},
        spec: {containers: [{name: "app", image: "busybox:1.36"}]}
      }
    }
  }'
}
review forged '{"secrets.agyn.io/env":"STRIPE_KEY=stripe-api-key","secrets.agyn.io/delivery":"env"}' >"$WORK/forged.json"
review control '{}' >"$WORK/control.json"
for _ in $(seq 1 30); do
  if curl -ks -o /dev/null "https://127.0.0.1:$WEBHOOK_PORT/healthz"; then
    break
  fi
  sleep 1
done
status="$(curl -ksS -o "$WORK/forged.out" -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary @"$WORK/forged.json" "https://127.0.0.1:$WEBHOOK_PORT/mutate")" || true
[[ "$status" == 401 ]] || fail "/mutate without a client certificate answered $status, not 401: $(cat "$WORK/forged.out")"
if grep -qF "$STRIPE_VALUE_1" "$WORK/forged.out" || grep -qiE 'stripe|acme' "$WORK/forged.out"; then
  fail "the 401 answer carries detail: $(cat "$WORK/forged.out")"
fi
log "/mutate without a client certificate: 401, nothing else"

# The same listener, with the API server's client certificate and full
# verification of the serving certificate, answers a harmless review.
status="$(curl -sS -o "$WORK/control.out" -w '%{http_code}' \
  --cacert "$CERTS/ca.crt" --cert "$CERTS/client.crt" --key "$CERTS/client.key" \
  --resolve "$WEBHOOK_HOST:$WEBHOOK_PORT:127.0.0.1" \
  -H 'Content-Type: application/json' --data-binary @"$WORK/control.json" \
  "https://$WEBHOOK_HOST:$WEBHOOK_PORT/mutate")" || true
[[ "$status" == 200 ]] || fail "/mutate with the client certificate answered $status: $(cat "$WORK/control.out")"
jq -e '.response.uid == "control" and .response.allowed == true' "$WORK/control.out" >/dev/null ||
  fail "/mutate with the client certificate did not allow a pod that asks for nothing: $(cat "$WORK/control.out")"
log "/mutate with the API server's client certificate: 200"

# A client certificate from another CA does not get through the handshake.
mkdir -p "$WORK/other"
docker run --rm --user "$USER_ID:$GROUP_ID" -v "$WORK/other:/out" "$IMAGE" \
  certs generate --client --service agyn-secrets --namespace "$NS" --out /out >/dev/null
if curl -ksS -o "$WORK/other.out" --cert "$WORK/other/client.crt" --key "$WORK/other/client.key" \
  -H 'Content-Type: application/json' --data-binary @"$WORK/forged.json" \
  "https://127.0.0.1:$WEBHOOK_PORT/mutate" 2>"$WORK/other.err"; then
  fail "a client certificate from another CA was accepted: $(cat "$WORK/other.out")"
fi
log "a client certificate from another CA: $(tr '\n' ' ' <"$WORK/other.err")"

# ---------------------------------------------------------------------------
log "rotating both values (OpenBao, and a new local version) and restarting the workload"
bao kv put -mount=secret prod/db password="$DB_VALUE_2" >/dev/null
body="$(jq -nc --arg v "$STRIPE_VALUE_2" '{value:$v}')"
api PATCH "/v1/organizations/$ORG/secrets/stripe-api-key" "$body" >/dev/null
kubectl -n "$TEAM_NS" rollout restart deploy/demo
kubectl -n "$TEAM_NS" rollout status deploy/demo --timeout=180s
kubectl -n "$TEAM_NS" wait --for=delete "pod/$POD" --timeout=120s
NEW_POD="$(running_pod "$TEAM_NS" app=demo)"
[[ -n "$NEW_POD" && "$NEW_POD" != "$POD" ]] || fail "no new demo pod after the restart"
expect_env "$NEW_POD" DB_PASSWORD "$DB_VALUE_2"
expect_env "$NEW_POD" STRIPE_KEY "$STRIPE_VALUE_2"
STRIPE_SECRET_2="$(secret_ref "$NEW_POD" STRIPE_KEY stripe-api-key "$STRIPE_VALUE_2")"
secret_ref "$NEW_POD" DB_PASSWORD db-password "$DB_VALUE_2" >/dev/null
[[ "$STRIPE_SECRET_2" != "$STRIPE_SECRET_1" ]] ||
  fail "the new version of stripe-api-key was written into the old Secret $STRIPE_SECRET_1"
expect_no_value "$NEW_POD" "$STRIPE_VALUE_2" "$DB_VALUE_2"

# ---------------------------------------------------------------------------
log "restart on rotation: only the opted-in Deployment rolls out"
ROTATING_1="rot_$(openssl rand -hex 12)"
ROTATING_2="rot_$(openssl rand -hex 12)"
body="$(jq -nc --arg v "$ROTATING_1" '{name:"rotating-key",storage:"local",value:$v}')"
api POST "/v1/organizations/$ORG/secrets" "$body" >/dev/null
kubectl apply -f "$E2E/rotation-workloads.yaml"
kubectl -n "$TEAM_NS" rollout status deploy/restarts --timeout=180s
kubectl -n "$TEAM_NS" rollout status deploy/stays --timeout=180s
RESTARTS_POD="$(running_pod "$TEAM_NS" app=restarts)"
STAYS_POD="$(running_pod "$TEAM_NS" app=stays)"
[[ -n "$RESTARTS_POD" && -n "$STAYS_POD" ]] || fail "the rotation workloads did not start"
expect_env "$RESTARTS_POD" ROTATING "$ROTATING_1"
body="$(jq -nc --arg v "$ROTATING_2" '{value:$v}')"
api PATCH "/v1/organizations/$ORG/secrets/rotating-key" "$body" >/dev/null
restarted=""
for _ in $(seq 1 120); do
  restarted="$(kubectl -n "$TEAM_NS" get deploy restarts -o json |
    jq -r '.spec.template.metadata.annotations["secrets.agyn.io/restarted-at"] // empty')"
  [[ -n "$restarted" ]] && break
  sleep 1
done
[[ -n "$restarted" ]] || fail "deploy/restarts was not restarted after the rotation: $(api GET "/v1/organizations/$ORG/secrets/rotating-key/rollouts")"
kubectl -n "$TEAM_NS" rollout status deploy/restarts --timeout=180s
kubectl -n "$TEAM_NS" wait --for=delete "pod/$RESTARTS_POD" --timeout=120s
NEW_RESTARTS_POD="$(running_pod "$TEAM_NS" app=restarts)"
[[ -n "$NEW_RESTARTS_POD" && "$NEW_RESTARTS_POD" != "$RESTARTS_POD" ]] ||
  fail "no new pod of deploy/restarts"
kubectl -n "$TEAM_NS" get pod "$NEW_RESTARTS_POD" -o json |
  jq -e '.metadata.annotations["secrets.agyn.io/injected"] // "" | test("(^|,)rotating-key@2(,|$)")' >/dev/null ||
  fail "the new pod of deploy/restarts does not carry rotating-key@2"
expect_env "$NEW_RESTARTS_POD" ROTATING "$ROTATING_2"
[[ "$(running_pod "$TEAM_NS" app=stays)" == "$STAYS_POD" ]] ||
  fail "deploy/stays, which did not opt in, was restarted"
kubectl -n "$TEAM_NS" get deploy stays -o json |
  jq -e '.spec.template.metadata.annotations["secrets.agyn.io/restarted-at"] == null' >/dev/null ||
  fail "deploy/stays got a restarted-at annotation"
api GET "/v1/organizations/$ORG/secrets/rotating-key/rollouts" |
  jq -e '[.items[] | select(.kind == "Deployment" and .name == "restarts" and .state == "restarted" and .to_version == 2)] | length == 1' >/dev/null ||
  fail "the rollouts of rotating-key do not list deploy/restarts"
log "deploy/restarts rolled out to rotating-key@2; deploy/stays kept pod $STAYS_POD"

log "a secret fenced to another namespace is refused"
body="$(jq -nc '{name:"prod-only-key",storage:"local",value:"fenced-value",allowed_namespaces:["team-a-prod"]}')"
api POST "/v1/organizations/$ORG/secrets" "$body" >/dev/null
if out="$(kubectl apply -f "$E2E/fenced-pod.yaml" 2>&1)"; then
  fail "a pod outside the fence was admitted: $out"
fi
grep -qF 'secret "prod-only-key" may not be used in namespace "team-a" (allowed: team-a-prod)' <<<"$out" ||
  fail "unexpected denial message: $out"
log "denied with: $out"

# ---------------------------------------------------------------------------
log "a pod naming an unknown secret is denied"
if out="$(kubectl apply -f "$E2E/bad-pod.yaml" 2>&1)"; then
  fail "pod with an unknown secret was admitted: $out"
fi
grep -qF "secret \"nope\" not found in organization \"$ORG\"" <<<"$out" ||
  fail "unexpected denial message: $out"
log "denied with: $out"

log "a pod in $NOBIND_NS (bound, but no RoleBinding for the product) is denied"
if out="$(kubectl apply -f "$E2E/no-rolebinding-pod.yaml" 2>&1)"; then
  fail "pod in $NOBIND_NS was admitted: $out"
fi
if ! grep -qi 'rolebinding' <<<"$out" || ! grep -qF "agyn-secrets-workload" <<<"$out"; then
  fail "the denial does not name the missing RoleBinding: $out"
fi
log "denied with: $out"

log "an unlabelled pod is not sent to the webhook"
kubectl apply --dry-run=server -o json -f "$E2E/plain-pod.yaml" |
  jq -e '[.spec.containers[].env[]?.name] | index("STRIPE_KEY") == null' >/dev/null ||
  fail "an unlabelled pod was mutated"
