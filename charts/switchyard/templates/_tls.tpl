{{/* TLS of the control channel (see the chart README, "TLS of the control channel"). */}}

{{/* Name of the Secret with `tls.crt`, `tls.key` and `ca.crt` (cert-manager layout). */}}
{{- define "switchyard.controlTLSSecretName" -}}
{{- if .Values.controlChannel.tls.existingSecret }}
{{- .Values.controlChannel.tls.existingSecret }}
{{- else }}
{{- printf "%s-control-tls" (include "switchyard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Where the TLS Secret is mounted (the operator gets tls.crt/tls.key, proxies ca.crt). */}}
{{- define "switchyard.controlTLSDir" -}}/var/run/switchyard/control-tls{{- end }}

{{/* The operator Service's DNS names, as proxies dial it (the generated certificate's SANs). */}}
{{- define "switchyard.operator.dnsNames" -}}
{{- $svc := include "switchyard.operator.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}
