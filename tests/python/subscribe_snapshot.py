"""A stock Python gRPC client (grpcio, grpcio-reflection, protobuf; no generated code) against
neighsyncd: it learns the API by server reflection, subscribes at grpcio's default limits
(4 MiB per received message), reads the snapshot to its end marker, and prints what it saw as
one JSON line. Used by tests/tests/stock_clients.rs.

    python subscribe_snapshot.py TARGET INTERFACE
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

SERVICE = "neighsyncd.v1.Neighsyncd"


def main() -> None:
    target, interface = sys.argv[1], sys.argv[2]
    # Default channel options: grpcio's stock receive limit.
    channel = grpc.insecure_channel(target)
    reflection = ProtoReflectionDescriptorDatabase(channel)
    services = sorted(reflection.get_services())
    pool = descriptor_pool.DescriptorPool(reflection)
    service = pool.FindServiceByName(SERVICE)
    method = service.methods_by_name["Subscribe"]
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    subscribe = channel.unary_stream(
        f"/{SERVICE}/Subscribe",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    request = request_class()
    request.filter.interface = interface
    request.filter.family = "IPv4"
    keys = set()
    chunks = 0
    biggest = 0
    end = None
    stream = subscribe(request, timeout=300)
    for message in stream:
        kind = message.WhichOneof("event")
        if kind == "snapshot":
            chunks += 1
            biggest = max(biggest, message.ByteSize())
            keys.update(n.key for n in message.snapshot.neighbors)
        elif kind == "snapshot_end":
            end = message.snapshot_end
            break
    stream.cancel()
    print(
        json.dumps(
            {
                "services": services,
                "distinct": len(keys),
                "count": end.count if end is not None else None,
                "chunks": chunks,
                "biggest_message": biggest,
            }
        )
    )


if __name__ == "__main__":
    main()
