{{/*
Names, labels and the pieces both Deployments share. Everything that appears in more than one
template is defined here once, so operator and proxy cannot drift apart.
*/}}

{{- define "tokenpool.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, or just <release> when it already contains the chart name. */}}
{{- define "tokenpool.fullname" -}}
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

{{- define "tokenpool.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "tokenpool.labels" -}}
helm.sh/chart: {{ include "tokenpool.chart" . }}
app.kubernetes.io/name: {{ include "tokenpool.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tokenpool
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component; call with (dict "ctx" $ "component" "proxy"). */}}
{{- define "tokenpool.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tokenpool.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Full labels of one component's objects; call like tokenpool.selectorLabels. */}}
{{- define "tokenpool.componentLabels" -}}
{{ include "tokenpool.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tokenpool.operator.fullname" -}}
{{- printf "%s-operator" (include "tokenpool.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tokenpool.proxy.fullname" -}}
{{- printf "%s-proxy" (include "tokenpool.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tokenpool.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "tokenpool.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create=false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tokenpool.proxy.serviceAccountName" -}}
{{- if .Values.proxy.serviceAccount.create }}
{{- default (include "tokenpool.proxy.fullname" .) .Values.proxy.serviceAccount.name }}
{{- else }}
{{- required "proxy.serviceAccount.name is required when proxy.serviceAccount.create=false" .Values.proxy.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tokenpool.console.fullname" -}}
{{- printf "%s-console" (include "tokenpool.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tokenpool.console.serviceAccountName" -}}
{{- if .Values.console.serviceAccount.create }}
{{- default (include "tokenpool.console.fullname" .) .Values.console.serviceAccount.name }}
{{- else }}
{{- required "console.serviceAccount.name is required when console.serviceAccount.create=false" .Values.console.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Cluster-scoped console grants carry the namespace, like the operator's. */}}
{{- define "tokenpool.console.clusterRoleName" -}}
{{- printf "%s-%s" (include "tokenpool.console.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* repository@digest when a digest is given (immutable), else repository:tag (tag defaults to appVersion). */}}
{{- define "tokenpool.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Pod spec fields both components share: pull secrets, security context. */}}
{{- define "tokenpool.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/*
Scheduling fields of one component; call with (dict "values" .Values.proxy).
*/}}
{{- define "tokenpool.scheduling" -}}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Environment both components share: the log settings. Call with (dict "ctx" $ "prefix" "TOKENPOOL_PROXY_").
*/}}
{{- define "tokenpool.commonEnv" -}}
- name: {{ .prefix }}LOG_FORMAT
  value: {{ .ctx.Values.logging.format | quote }}
- name: {{ .prefix }}LOG_LEVEL
  value: {{ .ctx.Values.logging.level | quote }}
{{- end }}

{{/* Writable scratch space: the root filesystem is read-only. */}}
{{- define "tokenpool.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{/* Cluster-scoped names carry the namespace: two releases in two namespaces must not collide. */}}
{{- define "tokenpool.operator.clusterRoleName" -}}
{{- printf "%s-%s" (include "tokenpool.operator.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Egress rules both components need: DNS and the Kubernetes API server. */}}
{{- define "tokenpool.egressBase" -}}
{{- $np := .Values.networkPolicy -}}
{{- if $np.allowDNS -}}
- to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{ end -}}
- ports:
    {{- range $np.apiServer.ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
  {{- with $np.apiServer.cidrs }}
  to:
    {{- range . }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  {{- end }}
{{- end }}

{{/* Egress to the upstream hosts (Augment tenants, OpenAI-compatible endpoints). */}}
{{- define "tokenpool.egressUpstream" -}}
{{- $up := .Values.networkPolicy.upstream -}}
- ports:
    {{- range $up.ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
  {{- with $up.cidrs }}
  to:
    {{- range . }}
    - ipBlock:
        cidr: {{ . }}
        {{- with $up.except }}
        except:
          {{- toYaml . | nindent 10 }}
        {{- end }}
    {{- end }}
  {{- end }}
{{- end }}

{{/*
A list of models (proxy.models, proxy.anthropicModels) as the proxy's JSON settings
(TOKENPOOL_PROXY_MODELS, TOKENPOOL_PROXY_ANTHROPIC_MODELS): values use the chart's camelCase,
the proxy's ModelSpec its field names.
*/}}
{{- define "tokenpool.proxy.modelsJson" -}}
{{- $models := list }}
{{- range . }}
{{- $m := dict "id" .id }}
{{- with .provider }}{{ $_ := set $m "provider" . }}{{ end }}
{{- with .upstreamModel }}{{ $_ := set $m "upstream_model" . }}{{ end }}
{{- with .mode }}{{ $_ := set $m "mode" . }}{{ end }}
{{- $models = append $models $m }}
{{- end }}
{{- toJson $models }}
{{- end }}
