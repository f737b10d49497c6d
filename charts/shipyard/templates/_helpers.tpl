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

{{/* Where the Airflow workers run: their ServiceAccount lives there, and the RoleBinding names it there. */}}
{{- define "shipyard.airflowWorker.namespace" -}}
{{- default .Release.Namespace .Values.airflowWorker.namespace }}
{{- end }}

{{- define "shipyard.pipeline.serviceAccountName" -}}
{{- default (printf "%s-pipeline" (include "shipyard.fullname" .)) .Values.pipeline.serviceAccount.name }}
{{- end }}

{{- define "shipyard.mlflow.fullname" -}}
{{- printf "%s-mlflow" (include "shipyard.fullname" .) }}
{{- end }}

{{/*
The InferenceService name of a pipeline, which is also the model name the predictor serves, labels its metrics
with and logs its predictions under: shipyard_spec.contract.serving_name (underscores become dashes). The schema
admits only pipeline names for which that is a DNS label.
*/}}
{{- define "shipyard.inferenceServiceName" -}}
{{- . | replace "_" "-" }}
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

{{/* The storage root every pod shares; the chart refuses to render without one. */}}
{{- define "shipyard.storage.root" -}}
{{- required "storage.root is required: the s3://bucket/prefix that step pods, predictors and MLflow share (charts/shipyard/README.md, Install)" .Values.storage.root }}
{{- end }}

{{/* Where predictors log and the drift step reads: storage.predictionLogUri, else <storage.root>/prediction_logs. */}}
{{- define "shipyard.predictionLogUri" -}}
{{- default (printf "%s/prediction_logs" (include "shipyard.storage.root" .)) .Values.storage.predictionLogUri }}
{{- end }}

{{/*
Environment of every container that reads or writes the bucket: the S3-compatible endpoint, the region and,
unless the pod has a workload identity, the access key pair from storage.existingSecret (never a value).
*/}}
{{- define "shipyard.storage.env" -}}
{{- with .Values.storage.endpoint }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ . | quote }}
{{- end }}
{{- with .Values.storage.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- with .Values.storage.existingSecret }}
{{- range list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.storage.existingSecret }}
      key: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* checkov skip for the access key pair read from a Secret into the environment (the AWS SDKs read it there). */}}
{{- define "shipyard.storage.checkovSkip" -}}
{{- if .Values.storage.existingSecret }}
checkov.io/skip-storage-secret-env: CKV_K8S_35=the AWS SDKs read the access key pair from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY - use workload identity to have no key at all
{{- end }}
{{- end }}

{{/*
KServe reads the S3 endpoint and region for its storage initializer from these annotations, on the
ServiceAccount (with workload identity) or on the credentials Secret.
*/}}
{{- define "shipyard.storage.kserveAnnotations" -}}
{{- with .Values.storage.endpoint }}
{{- $url := urlParse . }}
serving.kserve.io/s3-endpoint: {{ $url.host | quote }}
serving.kserve.io/s3-usehttps: {{ ternary "1" "0" (eq $url.scheme "https") | quote }}
{{- end }}
{{- with .Values.storage.region }}
serving.kserve.io/s3-region: {{ . | quote }}
{{- end }}
{{- end }}

{{- define "shipyard.mlflow.trackingUri" -}}
{{- printf "http://%s.%s.svc.cluster.local:%v" (include "shipyard.mlflow.fullname" .) .Release.Namespace .Values.mlflow.port }}
{{- end }}

{{/* Where the chart's MLflow proxies artifacts: mlflow.artifacts.destination, else <storage.root>/mlflow-artifacts. */}}
{{- define "shipyard.mlflow.artifactsDestination" -}}
{{- default (printf "%s/mlflow-artifacts" (include "shipyard.storage.root" .)) .Values.mlflow.artifacts.destination }}
{{- end }}

{{/*
An environment list as YAML, refusing a name set twice (a value in `<where>.env` that the chart already sets).
Call with (dict "env" <list of EnvVar> "where" "<values path>").
*/}}
{{- define "shipyard.uniqueEnv" -}}
{{- $seen := dict }}
{{- range .env }}
{{- if hasKey $seen .name }}
{{- fail (printf "%s.env sets %s, which the chart sets already (storage, spec and MLflow variables come from their own values): remove it from %s.env" $.where .name $.where) }}
{{- end }}
{{- $_ := set $seen .name true }}
{{- end }}
{{- toYaml .env }}
{{- end }}

{{/* Checks across values that the schema cannot express; each failure names the values and the fix. */}}
{{- define "shipyard.validateValues" -}}
{{- with .Values.inferenceServices }}
{{- if gt (int .minReplicas) (int .maxReplicas) }}
{{- fail (printf "inferenceServices.minReplicas (%v) is greater than inferenceServices.maxReplicas (%v): raise maxReplicas or lower minReplicas" .minReplicas .maxReplicas) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Spark image: images.pipelineSpark, its repository defaulting to the pipeline's and its tag to <pipeline tag>-spark. */}}
{{- define "shipyard.sparkImageValues" -}}
{{- $pipeline := .Values.images.pipeline }}
{{- $spark := .Values.images.pipelineSpark }}
repository: {{ default $pipeline.repository $spark.repository }}
tag: {{ default (printf "%s-spark" (default .Chart.AppVersion $pipeline.tag)) $spark.tag | quote }}
digest: {{ $spark.digest | quote }}
pullPolicy: {{ $spark.pullPolicy }}
{{- end }}

{{- define "shipyard.spark.driverServiceAccountName" -}}
{{- default (printf "%s-spark-driver" (include "shipyard.fullname" .)) .Values.spark.driverServiceAccount.name }}
{{- end }}

{{- define "shipyard.spark.executorTemplateName" -}}
{{- printf "%s-spark-executor" (include "shipyard.fullname" .) }}
{{- end }}

{{/* Where Spark step pods mount the executor pod template (spark.kubernetes.executor.podTemplateFile). */}}
{{- define "shipyard.spark.executorTemplateDir" -}}
/opt/shipyard/spark
{{- end }}

{{/*
What a Spark step (the driver) is told about its executors, by the contract's names (shipyard_spec.contract.Env):
the image, the ServiceAccount, the pod template, their number and size, how long to wait for the first one.
The driver's own facts (namespace, pod name and IP, API token) come from the operator (downward API).
*/}}
{{- define "shipyard.spark.executorEnv" -}}
- name: SHIPYARD_SPARK_EXECUTOR_IMAGE
  value: {{ include "shipyard.image" (dict "root" . "image" (include "shipyard.sparkImageValues" . | fromYaml)) | quote }}
- name: SHIPYARD_SPARK_EXECUTOR_SERVICE_ACCOUNT
  value: {{ include "shipyard.pipeline.serviceAccountName" . | quote }}
- name: SHIPYARD_SPARK_EXECUTOR_POD_TEMPLATE
  value: {{ printf "%s/executor.yaml" (include "shipyard.spark.executorTemplateDir" .) | quote }}
- name: SHIPYARD_SPARK_EXECUTOR_INSTANCES
  value: {{ .Values.spark.executors.instances | quote }}
- name: SHIPYARD_SPARK_EXECUTOR_CORES
  value: {{ .Values.spark.executors.cores | quote }}
- name: SHIPYARD_SPARK_EXECUTOR_MEMORY
  value: {{ .Values.spark.executors.memory | quote }}
- name: SHIPYARD_SPARK_EXECUTOR_START_TIMEOUT
  value: {{ .Values.spark.executors.startTimeoutSeconds | quote }}
{{- end }}
