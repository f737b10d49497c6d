"""Run a step CLI as a Kubernetes pod: the production runner (KubernetesPodOperator).

The pod runs the pipeline image's `shipyard-step` with the arguments and the spec hand-over
(`StepCall.environment()`: the spec's text as the DAG parsed it) the local runner uses (shared
builder), so the pod never reads a spec of its own; it writes its result to
`/airflow/xcom/return.json`, which the XCom sidecar returns. Environment comes from Secrets and
ConfigMaps by reference only. With the chart's pod templates (`SHIPYARD_POD_TEMPLATE_DIR`) the
template supplies identity, security context and placement; the settings here override or
complete it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from kubernetes.client import models as k8s

from shipyard.operators.engine_pods import ENGINE_PODS, EnginePod
from shipyard.operators.step import StepCall, log_result, step_failure
from shipyard.settings import KubernetesSettings
from shipyard_spec.contract import POD_RESULT_PATH, ExitCode
from shipyard_spec.model import StepResources

GPU_RESOURCE = "nvidia.com/gpu"


class PodStepOperator(KubernetesPodOperator):
    """A KubernetesPodOperator whose arguments come from the run context (window, run id, Params)."""

    def __init__(self, *, call: StepCall, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.call = call

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # Built from the run context here, so the UI's "Rendered Template" shows the real call.
        self.arguments = self.call.arguments(context, result_path=POD_RESULT_PATH)
        super().render_template_fields(context, jinja_env)
        # Added after rendering: the spec's text is data, never a Jinja template (a SQL query
        # in a spec may well contain "{{").
        handed_over = self.call.environment()
        self.env_vars = [
            *(v for v in self.env_vars or [] if v.name not in handed_over),
            *(k8s.V1EnvVar(name=name, value=value) for name, value in handed_over.items()),
        ]

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> k8s.V1Pod:
        # The provider would read a missing template's path as the template's YAML text.
        if self.pod_template_file and not Path(self.pod_template_file).is_file():
            raise AirflowFailException(
                f"pod template {self.pod_template_file} does not exist: the chart renders spark-step.yaml "
                "(pipelines with engine: spark) only with spark.enabled=true, and gpu-step.yaml only with "
                "pipeline.gpu.enabled=true"
            )
        return super().build_pod_request_obj(context, dry_run=dry_run)

    def execute(self, context: Any) -> Any:
        result = super().execute(context)
        log_result(self.log, self.call.step, result)
        return result

    def trigger_reentry(self, context: Any, event: dict[str, Any]) -> Any:
        result = super().trigger_reentry(context, event)
        log_result(self.log, self.call.step, result)
        return result

    def cleanup(
        self,
        pod: k8s.V1Pod,
        remote_pod: k8s.V1Pod,
        xcom_result: dict | None = None,
        context: Any = None,
    ) -> None:
        """The provider's cleanup, except that a failed check (`ExitCode.CHECK_FAILED`) is not retried."""
        try:
            super().cleanup(pod=pod, remote_pod=remote_pod, xcom_result=xcom_result, context=context)
        except AirflowException as e:
            if exit_code(remote_pod, self.base_container_name) == ExitCode.CHECK_FAILED:
                raise step_failure(self.call.step, ExitCode.CHECK_FAILED, str(e).splitlines()[0]) from e
            raise


def exit_code(pod: k8s.V1Pod | None, container: str) -> int | None:
    """The exit code of `container` in `pod`, None while it has not terminated."""
    statuses = (pod.status.container_statuses if pod is not None and pod.status else None) or []
    status = next((s for s in statuses if s.name == container), None)
    terminated = status.state.terminated if status is not None and status.state else None
    return terminated.exit_code if terminated is not None else None


def container_resources(resources: StepResources) -> k8s.V1ResourceRequirements:
    """Requests and limits from the spec; GPUs as a limit (Kubernetes sets the request to match)."""
    limits = {k: v for k, v in {"cpu": resources.cpu_limit, "memory": resources.memory_limit}.items() if v}
    if resources.gpu:
        limits[GPU_RESOURCE] = str(resources.gpu)
    return k8s.V1ResourceRequirements(
        requests={"cpu": resources.cpu, "memory": resources.memory}, limits=limits or None
    )


def env_from(settings: KubernetesSettings) -> list[k8s.V1EnvFromSource]:
    return [
        *(k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=n)) for n in settings.env_from_secrets),
        *(
            k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=n))
            for n in settings.env_from_config_maps
        ),
    ]


def pod_step_operator(
    call: StepCall,
    resources: StepResources,
    settings: KubernetesSettings,
    engine: EnginePod = ENGINE_PODS["pandas"],
    **task_kwargs: Any,
) -> PodStepOperator:
    """The step's pod: image, resources, placement and env references from the settings and the spec;
    what the pipeline's engine needs from `engine` (`engine_pods.ENGINE_PODS[spec.engine]`)."""
    gpu = resources.gpu > 0
    template = engine.template(settings.pod_template_dir, gpu) if settings.pod_template_dir else None
    tolerations = [*settings.tolerations, *(settings.gpu_tolerations if gpu else [])]
    return PodStepOperator(
        call=call,
        name=f"{call.pipeline}-{call.step}".replace("_", "-"),
        image=engine.image(settings),
        cmds=["shipyard-step"],
        env_vars=list(engine.env) or None,
        env_from=env_from(settings),
        container_resources=container_resources(resources),
        service_account_name=engine.service_account(settings),
        automount_service_account_token=engine.automount_service_account_token,
        node_selector={**settings.node_selector, **(settings.gpu_node_selector if gpu else {})} or None,
        tolerations=[k8s.V1Toleration(**t) for t in tolerations] or None,
        labels={
            "app.kubernetes.io/part-of": "shipyard",
            "shipyard/pipeline": call.pipeline,
            "shipyard/step": str(call.step),
        },
        pod_template_file=template,
        namespace=settings.namespace,
        kubernetes_conn_id=settings.kubernetes_conn_id,
        do_xcom_push=True,
        deferrable=settings.deferrable,
        on_finish_action="delete_succeeded_pod",  # failed pods stay for `kubectl logs` / `describe`
        get_logs=True,
        startup_timeout_seconds=settings.startup_timeout_seconds,
        **task_kwargs,
    )
