{{/* Names, labels and shared pod fragments. Every helper is prefixed with the chart name. */}}

{{- define "shipyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The object-name prefix: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "shipyard.fullname" -}}
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

{{- define "shipyard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable across upgrades. Call with (dict "root" $ "component" "...") */}}
{{- define "shipyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shipyard.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The standard app.kubernetes.io/* labels of every object. Call with (dict "root" $ "component" "...") */}}
{{- define "shipyard.labels" -}}
{{ include "shipyard.selectorLabels" . }}
app.kubernetes.io/part-of: shipyard
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "shipyard.chart" .root }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* An image reference from {repository, tag, digest}; the digest wins, the tag defaults to appVersion. */}}
{{- define "shipyard.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{- define "shipyard.airflowWorker.serviceAccountName" -}}
{{- default (printf "%s-airflow-worker" (include "shipyard.fullname" .)) .Values.airflowWorker.serviceAccount.name }}
{{- end }}

{{- define "shipyard.pipeline.serviceAccountName" -}}
{{- default (printf "%s-pipeline" (include "shipyard.fullname" .)) .Values.pipeline.serviceAccount.name }}
{{- end }}

{{- define "shipyard.pipelineSpecs.configMapName" -}}
{{- printf "%s-pipeline-specs" (include "shipyard.fullname" .) }}
{{- end }}

{{- define "shipyard.mlflow.fullname" -}}
{{- printf "%s-mlflow" (include "shipyard.fullname" .) }}
{{- end }}

{{/* The InferenceService name of a pipeline: its name as a DNS label (underscores become dashes). */}}
{{- define "shipyard.inferenceServiceName" -}}
{{- . | replace "_" "-" | lower | trunc 45 | trimSuffix "-" }}
{{- end }}

{{/* The writable /tmp every container gets, since root filesystems are read-only. Call with a size limit. */}}
{{- define "shipyard.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ . }}
{{- end }}

{{- define "shipyard.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "shipyard.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
checkov skips for an image reference, each with its reason (checkov reads `checkov.io/skip*: ID=reason`).
Call with (dict "image" <image values> "value" "<values path of the image>").
*/}}
{{- define "shipyard.imageCheckovSkips" -}}
checkov.io/skip-pull-policy: CKV_K8S_15=IfNotPresent is deliberate - release tags are immutable and {{ .value }}.digest pins by digest
{{- if not .image.digest }}
checkov.io/skip-digest: CKV_K8S_43=no digest given in {{ .value }}.digest - set it to pin the image by digest
{{- end }}
{{- end }}
