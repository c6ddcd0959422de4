{{/* Chart name, truncated to 63 characters. */}}
{{- define "switchyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object-name prefix: <release>-<chart>, or <release> when it contains the chart name. */}}
{{- define "switchyard.fullname" -}}
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

{{/* Labels on every object. */}}
{{- define "switchyard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "switchyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: switchyard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component; call with (dict "ctx" $ "component" "proxy"). */}}
{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchyard.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "switchyard.operator.fullname" -}}
{{- printf "%s-operator" (include "switchyard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "switchyard.proxy.fullname" -}}
{{- printf "%s-proxy" (include "switchyard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "switchyard.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "switchyard.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "switchyard.proxy.serviceAccountName" -}}
{{- if .Values.proxy.serviceAccount.create }}
{{- default (include "switchyard.proxy.fullname" .) .Values.proxy.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.proxy.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding the control-channel token (key `token`). */}}
{{- define "switchyard.controlSecretName" -}}
{{- if .Values.controlChannel.existingSecret }}
{{- .Values.controlChannel.existingSecret }}
{{- else }}
{{- printf "%s-control-token" (include "switchyard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The control channel's in-cluster URL, as the proxies dial it (https unless TLS is off). */}}
{{- define "switchyard.controlURL" -}}
{{- $scheme := ternary "https" "http" .Values.controlChannel.tls.enabled }}
{{- printf "%s://%s.%s.svc:%d" $scheme (include "switchyard.operator.fullname" .) .Release.Namespace (int .Values.controlChannel.port) }}
{{- end }}

{{/* An image reference; call with (dict "image" .Values.proxy.image "ctx" $). */}}
{{- define "switchyard.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}

{{/* Where the token Secret is mounted in both Deployments. */}}
{{- define "switchyard.tokenDir" -}}/var/run/switchyard/control{{- end }}

{{/* Name of the Secret holding the proxies' admin token (key `token`). */}}
{{- define "switchyard.adminTokenSecretName" -}}
{{- if .Values.proxy.adminToken.existingSecret }}
{{- .Values.proxy.adminToken.existingSecret }}
{{- else }}
{{- printf "%s-proxy-admin-token" (include "switchyard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Where the admin token Secret is mounted in the proxies. */}}
{{- define "switchyard.adminTokenDir" -}}/var/run/switchyard/admin{{- end }}
