"""Logging filters named by the predictor's default log configuration (logging.yaml).

kserve's gRPC server logs every call at INFO through its `kserve` logger
(`LoggingInterceptor`: "grpc method: /inference.GRPCInferenceService/ModelInfer"), the gRPC
twin of the access log the default configuration already turns off. The `kserve` logger
also carries the lines worth keeping (model registered, server started), so this filter drops
that one per-call line only.
"""

from __future__ import annotations

import logging

GRPC_CALL_PREFIX = "grpc method: "


class DropPerCallLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(GRPC_CALL_PREFIX))
