"""The one client layer every node uses to talk to Triton (no ROS).

- :class:`~triton_ros.endpoint.Endpoint`: the connection description, validated once;
- :class:`TritonClient` (``client.py``): stateless requests to one model (discovery, inference,
  shared memory), and :meth:`TritonClient.sequence_transport` for a stateful stream;
- ``streams.py``: the sequence transports (gRPC bidirectional stream, unary fallback);
- ``pool.py``: :class:`ServerPool`, the same over a client-side list of servers (least in-flight
  spreading, failed servers probed back, sequences placed by rendezvous hashing);
- ``channel.py``: tritonclient objects and request arguments from an Endpoint;
- ``errors.py``: :class:`TritonError` / :class:`SequenceError` and their classification.
"""
from triton_ros.client.channel import infer_inputs, new_tritonclient
from triton_ros.client.client import TritonClient
from triton_ros.client.pool import PooledSequenceTransport, ServerPool, rendezvous_rank
from triton_ros.client.errors import (UNAVAILABLE_KINDS, SequenceError, TritonError,
                                      classify_error, is_sequence_dropped)
from triton_ros.client.streams import (TRANSPORTS, GrpcStreamTransport, UnaryTransport,
                                       make_transport, open_sequence_transport)
from triton_ros.endpoint import (COMPRESSIONS, PROTOCOLS, SEQUENCE_TRANSPORTS,
                                 SHARED_MEMORY_MODES, Endpoint, check_url, endpoint_from_params,
                                 is_loopback_url, url_host)

__all__ = ["COMPRESSIONS", "PROTOCOLS", "SEQUENCE_TRANSPORTS", "SHARED_MEMORY_MODES",
           "TRANSPORTS", "UNAVAILABLE_KINDS", "Endpoint", "GrpcStreamTransport", "SequenceError",
           "PooledSequenceTransport", "ServerPool", "TritonClient", "TritonError", "UnaryTransport", "check_url", "classify_error",
           "endpoint_from_params", "infer_inputs", "is_loopback_url", "is_sequence_dropped",
           "make_transport", "new_tritonclient", "open_sequence_transport", "rendezvous_rank",
           "url_host"]
