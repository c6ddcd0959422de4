"""A real OTLP/HTTP trace receiver for the tests: decodes `POST /v1/traces` (protobuf) with the
official `opentelemetry-proto` package and serves what it received as JSON on `GET /spans`.

Run: python3 otlp_receiver.py   (prints `listening on 127.0.0.1:PORT`, serves until killed)
`--refuse` answers every export with 503, a collector that is up but rejects everything.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

SPANS = []
EXPORTS = []
LOCK = threading.Lock()
REFUSE = "--refuse" in sys.argv


def value(v):
    """An OTLP AnyValue as plain JSON."""
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind) if kind else None


def span_json(resource, scope, span):
    return {
        "service": resource.get("service.name"),
        "scope": scope.name,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "trace_state": span.trace_state,
        "name": span.name,
        "kind": Span.SpanKind.Name(span.kind),
        "start_ns": span.start_time_unix_nano,
        "end_ns": span.end_time_unix_nano,
        "attributes": {kv.key: value(kv.value) for kv in span.attributes},
        "status_code": span.status.code,
        "status_message": span.status.message,
        "links": [
            {"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex()} for l in span.links
        ],
    }


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path != "/v1/traces":
            return self.reply(404, b"", "text/plain")
        if self.headers.get("content-type") != "application/x-protobuf":
            return self.reply(415, b"", "text/plain")
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with LOCK:
            EXPORTS.append({"headers": {k.lower(): v for k, v in self.headers.items()}})
            if REFUSE:
                return self.reply(503, b"", "text/plain")
            for rs in request.resource_spans:
                resource = {kv.key: value(kv.value) for kv in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        SPANS.append(span_json(resource, ss.scope, span))
        out = ExportTraceServiceResponse().SerializeToString()
        self.reply(200, out, "application/x-protobuf")

    def do_GET(self):
        with LOCK:
            if self.path == "/spans":
                body = json.dumps(SPANS).encode()
            elif self.path == "/exports":
                body = json.dumps(EXPORTS).encode()
            else:
                return self.reply(404, b"", "text/plain")
        self.reply(200, body, "application/json")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    host, port = server.server_address
    print(f"listening on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
