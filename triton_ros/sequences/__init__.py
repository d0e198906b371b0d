"""Per-robot Triton sequences for stateful models (trackers, temporal filters, sensor streams).

No ROS here. ``ids.py``: correlation ids and claims (collision detection); ``stream.py``: one
stream's sequence for its whole life (:class:`SequenceStream`: START, keep-alives, END, restart
after a state loss); ``fleet.py``: a fleet's robot ids. The transports that carry a sequence's
requests live with the client (:mod:`triton_ros.client.streams`, opened by
``TritonClient.sequence_transport()``); they are re-exported here, so
``from triton_ros.sequences import X`` keeps working for every public name.
"""
from triton_ros.client.errors import (DROPPED_MARKER, SequenceError,  # noqa: F401
                                      is_sequence_dropped)
from triton_ros.client.streams import (TRANSPORTS, GrpcStreamTransport,  # noqa: F401
                                       UnaryTransport, make_transport, open_sequence_transport)
from triton_ros.sequences.fleet import FleetRobot, plan_fleet  # noqa: F401
from triton_ros.sequences.ids import (DERIVED_BASE, DERIVED_SPAN,  # noqa: F401
                                      MAX_CORRELATION_ID, MAX_ROBOT_ID, STREAM_BITS,
                                      STREAMS_PER_ROBOT, Claim, ClaimRegistry,
                                      CorrelationAssignment, CorrelationIdError,
                                      assign_correlation_id, check_unique, collision_text,
                                      derived_correlation_id, normalize_server, stream_key)
from triton_ros.sequences.stream import (DEFAULT_MAX_IDLE_S, SequenceCounters,  # noqa: F401
                                         SequenceEvent, SequenceResult, SequenceStream,
                                         SequenceTiming, wait_for_model)
