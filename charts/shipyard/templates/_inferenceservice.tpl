{{/*
One pipeline's InferenceService. Who owns what after the first release (charts/shipyard/README.md, "Who owns
the InferenceService"): the chart owns the predictor's shape (runtime, replicas, identity, security context,
resources, labels); the rollout controller owns the model it serves and the traffic split. So when the object
exists, the rollout-owned fields are copied from the live object instead of the bootstrap values: `helm upgrade`
then changes nothing the rollout controller set, whatever the apply method (client-side merge patch or
server-side apply).

Call with (dict "root" $ "pipeline" <pipeline name> "bootstrap" {storageUri, modelVersion} "live" <the object
as the API server returns it, or an empty map before the first install>).
*/}}
{{- define "shipyard.inferenceService" -}}
{{- $root := .root }}
{{- $isvc := $root.Values.inferenceServices }}
{{- $live := .live | default dict }}
{{- $livePredictor := dig "spec" "predictor" dict $live }}
{{- $liveAnnotations := dig "metadata" "annotations" dict $live }}
{{- $liveMode := get $liveAnnotations "serving.kserve.io/deploymentMode" }}
{{- if and $liveMode (ne $liveMode $isvc.deploymentMode) }}
{{- fail (printf "inferenceServices.deploymentMode is %s but InferenceService %s runs in %s mode, which KServe cannot change in place: keep %s, or delete the InferenceService and install again" $isvc.deploymentMode (include "shipyard.inferenceServiceName" .pipeline) $liveMode $liveMode) }}
{{- end }}
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {{ include "shipyard.inferenceServiceName" .pipeline }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "shipyard.labels" (dict "root" $root "component" "predictor") | nindent 4 }}
    shipyard.io/pipeline: {{ .pipeline }}
  annotations:
    serving.kserve.io/deploymentMode: {{ $isvc.deploymentMode }}
    serving.kserve.io/enable-prometheus-scraping: "true"
    helm.sh/resource-policy: keep
    {{- range $key := list "shipyard.io/stable-version" "shipyard.io/canary-version" }}
    {{- with get $liveAnnotations $key }}
    {{ $key }}: {{ . | quote }}
    {{- end }}
    {{- end }}
spec:
  predictor:
    {{- with $livePredictor.name }}
    name: {{ . }}
    {{- end }}
    minReplicas: {{ $isvc.minReplicas }}
    maxReplicas: {{ $isvc.maxReplicas }}
    serviceAccountName: {{ default (include "shipyard.pipeline.serviceAccountName" $root) $isvc.serviceAccountName }}
    labels:
      {{- include "shipyard.selectorLabels" (dict "root" $root "component" "predictor") | nindent 6 }}
      app.kubernetes.io/part-of: shipyard
    securityContext:
      {{- toYaml $root.Values.podSecurityContext | nindent 6 }}
    {{- if hasKey $livePredictor "canaryTrafficPercent" }}
    canaryTrafficPercent: {{ $livePredictor.canaryTrafficPercent }}
    {{- end }}
    model:
      modelFormat:
        name: {{ $root.Values.servingRuntime.modelFormat }}
      runtime: {{ $root.Values.servingRuntime.name }}
      {{- if $live }}
      {{- /* The rollout controller's model: what it released last, never the bootstrap values. */}}
      storageUri: {{ dig "model" "storageUri" "" $livePredictor | quote }}
      args:
        {{- toYaml (dig "model" "args" list $livePredictor) | nindent 8 }}
      {{- else }}
      storageUri: {{ required (printf "inferenceServices.pipelines.%s.storageUri is required" .pipeline) .bootstrap.storageUri | quote }}
      args:
        - --model_version={{ .bootstrap.modelVersion }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.containerSecurityContext | nindent 8 }}
      resources:
        {{- toYaml $root.Values.servingRuntime.resources | nindent 8 }}
  {{- with dig "spec" "canary" list $live }}
  {{- /* Standard mode: a canary in flight stays as the rollout controller declared it. */}}
  canary:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
