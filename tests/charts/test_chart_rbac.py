"""RBAC and service accounts: exactly the verbs the workers need, identities for the step pods."""

from __future__ import annotations

import pytest
from helm_template_generator import by_kind_name, render_chart

RBAC = ["templates/airflow-worker-rbac.yaml"]


class TestAirflowWorkerRole:
    def test_grants_exactly_the_pod_operator_and_rollout_verbs(self):
        role = by_kind_name(render_chart(show_only=RBAC))[("Role", "shipyard-airflow-worker")]
        granted = {
            (group, resource): sorted(rule["verbs"])
            for rule in role["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
        }
        assert granted == {
            ("", "pods"): ["create", "delete", "get", "list", "patch"],
            ("", "pods/log"): ["get"],
            ("", "pods/exec"): ["create"],
            ("serving.kserve.io", "inferenceservices"): ["create", "get", "patch"],
        }

    def test_pod_events_are_an_opt_in_read_only_extra(self):
        values = {"airflowWorker": {"rbac": {"podEvents": True}}}
        role = by_kind_name(render_chart(values, show_only=RBAC))[("Role", "shipyard-airflow-worker")]
        extra = [rule for rule in role["rules"] if "events" in rule["resources"]]
        assert extra == [{"apiGroups": [""], "resources": ["events"], "verbs": ["list"]}]
        assert len(role["rules"]) == 5

    def test_no_rule_uses_wildcards_or_resource_names(self):
        role = by_kind_name(render_chart(show_only=RBAC))[("Role", "shipyard-airflow-worker")]
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
            assert "resourceNames" not in rule

    def test_binds_the_role_to_the_worker_service_account(self):
        binding = by_kind_name(render_chart(show_only=RBAC))[("RoleBinding", "shipyard-airflow-worker")]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "shipyard-airflow-worker",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "shipyard-airflow-worker", "namespace": "shipyard"}
        ]

    def test_airflow_may_run_in_another_namespace(self):
        objects = by_kind_name(render_chart({"airflowWorker": {"namespace": "airflow"}}))
        binding = objects[("RoleBinding", "shipyard-airflow-worker")]
        assert binding["metadata"]["namespace"] == "shipyard"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "shipyard-airflow-worker", "namespace": "airflow"}
        ]
        # The account lives where the workers run; the Role stays where the step pods run.
        assert objects[("ServiceAccount", "shipyard-airflow-worker")]["metadata"]["namespace"] == "airflow"
        assert objects[("Role", "shipyard-airflow-worker")]["metadata"]["namespace"] == "shipyard"

    def test_binds_an_existing_service_account_when_the_chart_does_not_create_one(self):
        objects = by_kind_name(
            render_chart({"airflowWorker": {"serviceAccount": {"create": False, "name": "airflow-worker"}}})
        )
        assert ("ServiceAccount", "shipyard-airflow-worker") not in objects
        binding = objects[("RoleBinding", "shipyard-airflow-worker")]
        assert binding["subjects"][0]["name"] == "airflow-worker"

    def test_rbac_can_be_left_to_the_platform(self):
        kinds = {
            kind for kind, _ in by_kind_name(render_chart({"airflowWorker": {"rbac": {"create": False}}}))
        }
        assert not kinds & {"Role", "RoleBinding"}


class TestServiceAccounts:
    @pytest.mark.parametrize(
        "annotations",
        [
            {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/shipyard"},
            {"iam.gke.io/gcp-service-account": "shipyard@project.iam.gserviceaccount.com"},
        ],
    )
    def test_pipeline_account_carries_the_workload_identity_annotations(self, annotations):
        objects = render_chart(
            {"pipeline": {"serviceAccount": {"annotations": annotations}}},
            show_only=["templates/pipeline-serviceaccount.yaml"],
        )
        assert objects[0]["metadata"]["annotations"] == annotations

    def test_pipeline_pods_get_no_kubernetes_api_token(self):
        account = render_chart(show_only=["templates/pipeline-serviceaccount.yaml"])[0]
        assert account["automountServiceAccountToken"] is False

    def test_worker_account_keeps_its_token_to_launch_pods(self):
        account = render_chart(show_only=["templates/airflow-worker-serviceaccount.yaml"])[0]
        assert "automountServiceAccountToken" not in account
