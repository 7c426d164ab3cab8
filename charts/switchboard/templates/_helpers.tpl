{{/* Labels of every object: config/default's part-of label and Helm's own. */}}
{{- define "switchboard.labels" -}}
app.kubernetes.io/part-of: switchboard
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "switchboard.image" -}}
{{ printf "%s:%s" .Values.image.repository (toString .Values.image.tag) }}
{{- end }}

{{/* Whether the controller serves either admission webhook (and so needs the webhook Service). */}}
{{- define "switchboard.webhooks" -}}
{{- if or .Values.jobs.allocation .Values.jobs.loadBalancer }}true{{ end }}
{{- end }}
