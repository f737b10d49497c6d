#!/bin/bash
# shipyard-spark-executor: the command of a Spark executor pod (the chart's executor pod template).
# Spark's executor backend on this image's pyspark jars, configured by what the driver put in the
# pod's environment (Spark's own images do this in their entrypoint; this image's is shipyard-step).
# The JVM keeps that environment: its AWS SDK reads the storage credentials the pod template gives it
# (the step pods' storage variables, or workload identity) when the executor reads s3a://.
set -euo pipefail
if [[ "${1:-}" != executor ]]; then
  echo "usage: shipyard-spark-executor executor (the argument Spark gives its executor pods)" >&2
  exit 2
fi
# The executor fetches the driver's spark.jars (JDBC drivers, S3A) into its working directory: the pod's
# /tmp (an emptyDir), as the image's WORKDIR is read-only in the chart's pods (readOnlyRootFilesystem).
cd "${TMPDIR:-/tmp}"
jars="$(python -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"
# The driver hands the executor JVM its options as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ... in order.
mapfile -t java_opts < <(env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | sed 's/^[^=]*=//')
exec java "${java_opts[@]}" -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" \
  -cp "$jars/*" org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
  --driver-url "$SPARK_DRIVER_URL" \
  --executor-id "$SPARK_EXECUTOR_ID" \
  --cores "$SPARK_EXECUTOR_CORES" \
  --app-id "$SPARK_APPLICATION_ID" \
  --hostname "$SPARK_EXECUTOR_POD_IP" \
  --resourceProfileId "$SPARK_RESOURCE_PROFILE_ID" \
  --podName "$SPARK_EXECUTOR_POD_NAME"
