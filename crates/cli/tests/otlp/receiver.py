"""An OTLP/gRPC trace receiver for the tests, on OpenTelemetry's own
protobuf definitions (PyPI opentelemetry-proto) served by grpcio.

Prints `ready PORT` once listening, then one JSON line per span received:
its ids (hex), parent, name, kind, the resource's service.name and its
attributes. Exits when stdin closes (the test that started it is gone),
or, when stdin is not a pipe (bench/cost.py), when it is killed.
`--port` listens there rather than on a free port; `--quiet` prints no span.
"""

import argparse
import json
import os
import stat
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


PRINT = threading.Lock()


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


class Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, quiet):
        self.quiet = quiet

    def Export(self, request, context):
        if self.quiet:
            return trace_service_pb2.ExportTraceServiceResponse()
        for rs in request.resource_spans:
            resource = {kv.key: value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    line = {
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": s.kind,
                        "service": resource.get("service.name"),
                        "start": s.start_time_unix_nano,
                        "end": s.end_time_unix_nano,
                        "error": s.status.code == 2,
                        "attributes": {kv.key: value(kv.value) for kv in s.attributes},
                    }
                    # Exports arrive on several threads: one whole line at a time.
                    with PRINT:
                        sys.stdout.write(json.dumps(line) + "\n")
                        sys.stdout.flush()
        return trace_service_pb2.ExportTraceServiceResponse()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(args.quiet), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"ready {port}", flush=True)
    if stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
        sys.stdin.read()
        server.stop(0)
    else:
        server.wait_for_termination()


if __name__ == "__main__":
    main()
