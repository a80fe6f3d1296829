"""An OTLP trace receiver for the tests, on OpenTelemetry's own protobuf
definitions (PyPI opentelemetry-proto): over gRPC, served by grpcio, or
with `--http` over HTTP (protobuf bodies POSTed to /v1/traces, or any
path: each line then has its path and the request's headers).

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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


PRINT = threading.Lock()


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def print_spans(request, extra=None):
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
                line.update(extra or {})
                # Exports arrive on several threads: one whole line at a time.
                with PRINT:
                    sys.stdout.write(json.dumps(line) + "\n")
                    sys.stdout.flush()


class Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, quiet):
        self.quiet = quiet

    def Export(self, request, context):
        if not self.quiet:
            print_spans(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def http_handler(quiet):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if self.headers.get("content-type") != "application/x-protobuf":
                self.send_error(415, "OTLP/HTTP takes application/x-protobuf")
                return
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            if not quiet:
                headers = {k.lower(): v for k, v in self.headers.items()}
                print_spans(request, {"http_path": self.path, "http_headers": headers})
            answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--http", action="store_true", help="OTLP over HTTP rather than gRPC")
    args = ap.parse_args()
    if args.http:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), http_handler(args.quiet))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port, stop, wait = server.server_address[1], server.shutdown, threading.Event().wait
    else:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(args.quiet), server)
        port = server.add_insecure_port(f"127.0.0.1:{args.port}")
        server.start()
        stop, wait = (lambda: server.stop(0)), server.wait_for_termination
    print(f"ready {port}", flush=True)
    if stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
        sys.stdin.read()
        stop()
    else:
        wait()


if __name__ == "__main__":
    main()
