{{/* Names and labels shared by every template. */}}
{{- define "atalaya.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "atalaya.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "atalaya.labels" -}}
app.kubernetes.io/name: {{ include "atalaya.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "atalaya.selectorLabels" -}}
app.kubernetes.io/name: {{ include "atalaya.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "atalaya.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "atalaya.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "atalaya.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "atalaya.secretName" -}}
{{- default (printf "%s-secrets" (include "atalaya.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* The environment of every Atalaya container: the ConfigMap and the Secret. */}}
{{- define "atalaya.envFrom" -}}
- configMapRef:
    name: {{ include "atalaya.fullname" . }}-config
- secretRef:
    name: {{ include "atalaya.secretName" . }}
{{- end -}}

{{/* Restart pods when the configuration changes. */}}
{{- define "atalaya.configChecksum" -}}
checksum/config: {{ toJson .Values.config | sha256sum }}
checksum/secret: {{ toJson .Values.secrets | sha256sum }}
{{- end -}}
