{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "agyn-secrets.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name of the release's objects. A release named like the
chart (the usual `helm install agyn-secrets ...`) gets the plain chart name,
which is also the Service name the certificates are issued for.
*/}}
{{- define "agyn-secrets.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "agyn-secrets.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select the pods; they never change over the life of a release.
*/}}
{{- define "agyn-secrets.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agyn-secrets.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "agyn-secrets.labels" -}}
helm.sh/chart: {{ include "agyn-secrets.chart" . }}
{{ include "agyn-secrets.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: admission-webhook
app.kubernetes.io/part-of: agyn-secrets
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "agyn-secrets.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "agyn-secrets.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "agyn-secrets.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Image of the init container of delivery exec: the chart's own image unless
exec.image says otherwise.
*/}}
{{- define "agyn-secrets.execImage" -}}
{{- $repository := default .Values.image.repository .Values.exec.image.repository }}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) .Values.exec.image.tag }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}

{{/*
The URL given to pods for the exec listener: the Service's name in the
namespace, which the serving certificate covers in every TLS mode.
*/}}
{{- define "agyn-secrets.execURL" -}}
{{- printf "https://%s.%s.svc:%d" (include "agyn-secrets.fullname" .) .Release.Namespace (.Values.exec.port | int) }}
{{- end }}

{{/*
Where the CA of the serving certificate comes from, for the wrapper of
delivery exec to trust: "certManager" (ca.crt that cert-manager's issuer
writes into the serving TLS Secret), "caBundle" (tls.caBundle, in the
ConfigMap <fullname>-serving-ca), or "" (exec off, or no CA known: the
process then looks for ca.crt beside the certificate).
*/}}
{{- define "agyn-secrets.execCAMode" -}}
{{- if .Values.exec.enabled }}
{{- if .Values.tls.certManager.enabled }}
{{- "certManager" }}
{{- else if .Values.tls.caBundle }}
{{- "caBundle" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "agyn-secrets.servingCAConfigMapName" -}}
{{- printf "%s-serving-ca" (include "agyn-secrets.fullname" .) }}
{{- end }}

{{/*
Path of the serving certificate's CA file inside the pod (AGYN_EXEC_CA_FILE).
*/}}
{{- define "agyn-secrets.execCAFile" -}}
{{- $mode := include "agyn-secrets.execCAMode" . }}
{{- if eq $mode "certManager" }}
{{- "/etc/agyn-secrets/tls/ca.crt" }}
{{- else if eq $mode "caBundle" }}
{{- "/etc/agyn-secrets/serving-ca/ca.crt" }}
{{- end }}
{{- end }}

{{/*
Name of the ClusterRole (and its ClusterRoleBinding) that lets the process
create TokenReviews, to check the tokens of delivery exec.
*/}}
{{- define "agyn-secrets.tokenReviewRoleName" -}}
{{- printf "%s-tokenreview" (include "agyn-secrets.fullname" .) }}
{{- end }}

{{/*
Name of the Secret holding the webhook's serving certificate.
*/}}
{{- define "agyn-secrets.tlsSecretName" -}}
{{- if and (not .Values.tls.certManager.enabled) .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else }}
{{- printf "%s-tls" (include "agyn-secrets.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Name of the cert-manager Certificate for the serving certificate.
*/}}
{{- define "agyn-secrets.certificateName" -}}
{{- printf "%s-tls" (include "agyn-secrets.fullname" .) }}
{{- end }}

{{/*
Name of the ClusterRole bound in each workload namespace; the process gets it
as AGYN_WORKLOAD_ROLE to word its RoleBinding hints.
*/}}
{{- define "agyn-secrets.workloadRoleName" -}}
{{- printf "%s-workload" (include "agyn-secrets.fullname" .) }}
{{- end }}

{{/*
Where the webhook's client CA comes from: "" (no caller authentication),
"certManager" (ca.crt of the serving TLS Secret, written by cert-manager's
issuer) or "secret" (webhook.clientCA.existingSecret, or the Secret the
chart makes from webhook.clientCA.caCert).
*/}}
{{- define "agyn-secrets.clientCAMode" -}}
{{- $c := .Values.webhook.clientCA }}
{{- if $c.enabled }}
{{- if or $c.existingSecret $c.caCert }}
{{- "secret" }}
{{- else if .Values.tls.certManager.enabled }}
{{- "certManager" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of the Secret holding the client CA under key ca.crt (mode "secret").
*/}}
{{- define "agyn-secrets.clientCASecretName" -}}
{{- default (printf "%s-client-ca" (include "agyn-secrets.fullname" .)) .Values.webhook.clientCA.existingSecret }}
{{- end }}

{{/*
Path of the client CA file inside the pod.
*/}}
{{- define "agyn-secrets.clientCAFile" -}}
{{- if eq (include "agyn-secrets.clientCAMode" .) "certManager" }}
{{- "/etc/agyn-secrets/tls/ca.crt" }}
{{- else }}
{{- "/etc/agyn-secrets/client-ca/ca.crt" }}
{{- end }}
{{- end }}

{{/*
Name of the cert-manager Certificate (and its Secret) that the API server
presents to the webhook.
*/}}
{{- define "agyn-secrets.apiserverClientName" -}}
{{- printf "%s-apiserver-client" (include "agyn-secrets.fullname" .) }}
{{- end }}

{{/*
Convert a duration of the form Ns or Nms into milliseconds; prints nothing
for other forms (they are not range-checked).
*/}}
{{- define "agyn-secrets.durationMillis" -}}
{{- if regexMatch "^[0-9]+ms$" . }}
{{- trimSuffix "ms" . }}
{{- else if regexMatch "^[0-9]+s$" . }}
{{- mul (trimSuffix "s" . | atoi) 1000 }}
{{- else if regexMatch "^[0-9]+m$" . }}
{{- mul (trimSuffix "m" . | atoi) 60000 }}
{{- end }}
{{- end }}

{{/*
Refuse value combinations that would install a broken webhook.
*/}}
{{- define "agyn-secrets.validate" -}}
{{- $tls := .Values.tls }}
{{- if and $tls.certManager.enabled (or $tls.existingSecret $tls.crt $tls.key $tls.caBundle) }}
{{- fail "tls.certManager.enabled manages the certificate and the CA bundle itself: leave tls.existingSecret, tls.caBundle, tls.crt and tls.key empty" }}
{{- end }}
{{- if or (and $tls.crt (not $tls.key)) (and $tls.key (not $tls.crt)) }}
{{- fail "tls.crt and tls.key must be given together" }}
{{- end }}
{{- if and $tls.crt $tls.existingSecret }}
{{- fail "give either tls.existingSecret or tls.crt/tls.key, not both" }}
{{- end }}
{{- if and (or $tls.crt $tls.existingSecret) (not $tls.caBundle) }}
{{- fail "tls.caBundle is required with tls.existingSecret or tls.crt/tls.key: set it to the content of ca-bundle.b64 from `agyn-secrets certs generate`" }}
{{- end }}
{{- $client := .Values.webhook.clientCA }}
{{- if and $client.existingSecret $client.caCert }}
{{- fail "give either webhook.clientCA.existingSecret or webhook.clientCA.caCert, not both" }}
{{- end }}
{{- if and (not $client.enabled) (or $client.existingSecret $client.caCert) }}
{{- fail "webhook.clientCA.existingSecret and webhook.clientCA.caCert take effect only with webhook.clientCA.enabled=true: set it, or leave them empty" }}
{{- end }}
{{- if and $client.enabled (not (include "agyn-secrets.clientCAMode" .)) }}
{{- fail "webhook.clientCA.enabled needs the CA that signed the API server's client certificate: set webhook.clientCA.existingSecret (a Secret in the release namespace with key ca.crt) or webhook.clientCA.caCert (PEM, e.g. --set-file webhook.clientCA.caCert=certs/ca.crt from `agyn-secrets certs generate --client`), or enable tls.certManager.enabled to issue the client certificate from the serving certificate's CA" }}
{{- end }}
{{- if and (eq .Values.webhook.defaultDelivery "env") (not $client.enabled) }}
{{- fail "webhook.defaultDelivery=env needs webhook.clientCA.enabled=true: the webhook puts values in its answer only to a caller with a verified client certificate, so every pod would be denied. Keep defaultDelivery=secret, or set up webhook.clientCA" }}
{{- end }}
{{- range .Values.rbac.namespaces }}
{{- if or (eq . $.Release.Namespace) (eq . "kube-system") }}
{{- fail (printf "rbac.namespaces: %q is not a workload namespace: the webhook never mutates pods in the release namespace or kube-system, so the product needs no Secret access there" .) }}
{{- end }}
{{- end }}
{{- if and (eq .Values.webhook.defaultDelivery "exec") (not .Values.exec.enabled) }}
{{- fail "webhook.defaultDelivery=exec needs exec.enabled=true: without the exec listener no pod could get its values. Keep defaultDelivery=secret, or enable exec" }}
{{- end }}
{{- if has (.Values.exec.port | int) (list 8443 8080) }}
{{- fail (printf "exec.port %d is taken: 8443 is the webhook's port and 8080 the API's" (.Values.exec.port | int)) }}
{{- end }}
{{- if and .Values.networkPolicy.webhookFrom (not .Values.networkPolicy.enabled) }}
{{- fail "networkPolicy.webhookFrom takes effect only with networkPolicy.enabled=true: set it, or leave webhookFrom empty" }}
{{- end }}
{{- $admission := include "agyn-secrets.durationMillis" .Values.admissionTimeout }}
{{- if $admission }}
{{- if ge ($admission | atoi) (mul .Values.webhook.timeoutSeconds 1000) }}
{{- fail (printf "admissionTimeout (%s) must be shorter than webhook.timeoutSeconds (%ds), or the API server gives up before the product can explain a failure" .Values.admissionTimeout (.Values.webhook.timeoutSeconds | int)) }}
{{- end }}
{{- end }}
{{- end }}
