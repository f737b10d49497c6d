"""The two step runners: `LocalStepOperator` (subprocess) and `PodStepOperator` (KubernetesPodOperator).

`PodStepOperator` is imported from `shipyard.operators.pod` only when the kubernetes runner
is chosen: the Kubernetes client costs a DAG file about half a second of parse time.
"""
