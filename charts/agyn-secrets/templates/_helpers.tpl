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
{{- $admission := include "agyn-secrets.durationMillis" .Values.admissionTimeout }}
{{- if $admission }}
{{- if ge ($admission | atoi) (mul .Values.webhook.timeoutSeconds 1000) }}
{{- fail (printf "admissionTimeout (%s) must be shorter than webhook.timeoutSeconds (%ds), or the API server gives up before the product can explain a failure" .Values.admissionTimeout (.Values.webhook.timeoutSeconds | int)) }}
{{- end }}
{{- end }}
{{- end }}
