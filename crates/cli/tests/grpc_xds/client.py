"""A proxyless gRPC client: grpcio's own xDS client, no weft code.

Reads one JSON command per line on stdin, {"n": N, "metadata": [[k, v]]},
makes N unary calls to weft.demo.v1.Demo/Hello over one channel to the
xds:/// target in argv[1] (kept across commands, so xDS updates reach it),
and prints one JSON line: {"versions": {...}, "instances": {...}, "errors": {...}}.
The bootstrap file comes from GRPC_XDS_BOOTSTRAP.
"""

import json
import sys

import grpc


def encode_request(name: str) -> bytes:
    data = name.encode()
    return b"\x0a" + bytes([len(data)]) + data  # field 1, length-delimited (short names)


def decode_reply(raw: bytes) -> dict:
    fields, i = {}, 0
    while i < len(raw):
        tag = raw[i]
        length = raw[i + 1]
        fields[tag >> 3] = raw[i + 2 : i + 2 + length].decode()
        i += 2 + length
    return {"version": fields.get(2, ""), "instance": fields.get(3, "")}


def main() -> None:
    channel = grpc.insecure_channel(sys.argv[1])
    hello = channel.unary_unary(
        "/weft.demo.v1.Demo/Hello",
        request_serializer=lambda b: b,
        response_deserializer=decode_reply,
    )
    for line in sys.stdin:
        cmd = json.loads(line)
        versions, instances, errors = {}, {}, {}
        for _ in range(cmd["n"]):
            try:
                reply = hello(encode_request("xds"), metadata=[tuple(m) for m in cmd.get("metadata", [])], timeout=5)
                versions[reply["version"]] = versions.get(reply["version"], 0) + 1
                instances[reply["instance"]] = instances.get(reply["instance"], 0) + 1
            except grpc.RpcError as e:  # counted, not fatal: the test decides
                key = f"{e.code().name}: {e.details()}"
                errors[key] = errors.get(key, 0) + 1
        print(json.dumps({"versions": versions, "instances": instances, "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
