{{/* Names: every object is <release>-<component>; with the release named "batchapi" that is batchapi-admission etc. */}}
{{- define "batchapi.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "batchapi.name" -}}
{{- printf "%s-%s" (include "batchapi.fullname" .root) .component -}}
{{- end -}}

{{/* Labels of every object; `app` stays the pod's component name because the alert rules read job = app label. */}}
{{- define "batchapi.labels" -}}
app: {{ include "batchapi.name" . }}
app.kubernetes.io/name: batchapi
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: batchapi
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "batchapi.selector" -}}
app: {{ include "batchapi.name" . }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "batchapi.image" -}}
{{- $img := index .root.Values.images .image -}}
{{- printf "%s%s:%s" .root.Values.imageRegistry $img.repository (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{- define "batchapi.etcdHeadless" -}}{{ include "batchapi.fullname" . }}-etcd{{- end -}}

{{- define "batchapi.etcdScheme" -}}{{ if .Values.etcd.tls.enabled }}https{{ else }}http{{ end }}{{- end -}}

{{/* The client URLs the services use: every bundled member by its stable name, or the external endpoints. */}}
{{- define "batchapi.etcdEndpoints" -}}
{{- if .Values.etcd.bundled -}}
{{- $eps := list -}}
{{- range $i, $_ := until (int .Values.etcd.replicas) -}}
{{- $eps = append $eps (printf "%s://%s-%d.%s.%s.svc:2379" (include "batchapi.etcdScheme" $) (include "batchapi.etcdHeadless" $) $i (include "batchapi.etcdHeadless" $) $.Release.Namespace) -}}
{{- end -}}
{{- join "," $eps -}}
{{- else -}}
{{- required "etcd.external.endpoints is required when etcd.bundled is false" (join "," .Values.etcd.external.endpoints) -}}
{{- end -}}
{{- end -}}

{{/* The Secret with the services' etcd client certificate, or "" for a plain connection. */}}
{{- define "batchapi.etcdClientSecret" -}}
{{- if .Values.etcd.bundled -}}{{ if .Values.etcd.tls.enabled }}{{ .Values.etcd.tls.clientSecret }}{{ end }}{{- else -}}{{ .Values.etcd.external.clientSecret }}{{- end -}}
{{- end -}}

{{- define "batchapi.tokensSecret" -}}{{ default (printf "%s-tokens" (include "batchapi.fullname" .)) .Values.auth.existingTokensSecret }}{{- end -}}
{{- define "batchapi.serviceTokenSecret" -}}{{ default (printf "%s-service-token" (include "batchapi.fullname" .)) .Values.auth.existingServiceTokenSecret }}{{- end -}}
{{- define "batchapi.historySecret" -}}{{ default (printf "%s-history" (include "batchapi.fullname" .)) .Values.history.existingSecret }}{{- end -}}

{{/* Environment every service reads (docs/configuration.md, "Every service"). Args: root, component. */}}
{{- define "batchapi.commonEnv" -}}
- name: BATCH_ETCD_ENDPOINTS
  value: {{ include "batchapi.etcdEndpoints" .root | quote }}
- name: BATCH_ETCD_PREFIX
  value: {{ .root.Values.etcdPrefix | quote }}
{{- if include "batchapi.etcdClientSecret" .root }}
- name: BATCH_ETCD_CA
  value: /etc/batchapi/etcd/ca.crt
- name: BATCH_ETCD_CERT
  value: /etc/batchapi/etcd/tls.crt
- name: BATCH_ETCD_KEY
  value: /etc/batchapi/etcd/tls.key
{{- end }}
- name: BATCH_PORT
  value: "8080"
- name: BATCH_LEASE_TTL
  value: {{ .root.Values.leaseTtlSeconds | quote }}
- name: BATCH_LOG_LEVEL
  value: {{ .root.Values.logLevel | quote }}
- name: BATCH_INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- with .root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Extra BATCH_* settings of one service, from a map. */}}
{{- define "batchapi.extraEnv" -}}
{{- range $k, $v := . }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end -}}

{{- define "batchapi.etcdClientMount" -}}
{{- if include "batchapi.etcdClientSecret" . }}
- name: etcd-client
  mountPath: /etc/batchapi/etcd
  readOnly: true
{{- end }}
{{- end -}}

{{- define "batchapi.etcdClientVolume" -}}
{{- if include "batchapi.etcdClientSecret" . }}
- name: etcd-client
  secret:
    secretName: {{ include "batchapi.etcdClientSecret" . }}
    defaultMode: 0444 # read by the non-root service user
{{- end }}
{{- end -}}

{{- define "batchapi.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 5
  failureThreshold: 60
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{- define "batchapi.scrapeAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: "8080"
prometheus.io/path: /metrics
{{- end -}}

{{- define "batchapi.peer" -}}
- podSelector:
    matchLabels:
      {{- include "batchapi.selector" . | nindent 6 }}
{{- end -}}
