"""Errors of the client layer, classified in words a user can act on (no ROS)."""
import re

from tritonclient.utils import InferenceServerException

DROPPED_MARKER = "must specify the START flag"


class TritonError(RuntimeError):
    """A request to the Triton server failed; ``kind`` says why, in words a user can act on.

    Kinds: ``unreachable`` (refused, unresolvable host), ``unresponsive`` (no answer within the
    request timeout: hung or overloaded server), ``protocol`` (the port speaks another protocol:
    HTTP vs gRPC), ``tls`` (TLS handshake failed), ``auth`` (headers rejected), ``model_missing``
    (not in the server's repository), ``model_not_ready`` (in the repository, not loaded/ready),
    ``rejected`` (the server refused this request, e.g. a wrong shape).


    ``gateway``: the answer was a proxy's 502/503/504 (it gave up on the server behind it;
    tritonserver itself never answers these), so the same request through the proxy may reach
    another server.
    """

    def __init__(self, message: str, kind: str = "rejected", gateway: bool = False):
        super().__init__(message)
        self.kind = kind
        self.gateway = gateway


#: kinds meaning "the server cannot serve us now" (as opposed to "this request was bad")
UNAVAILABLE_KINDS = frozenset({"unreachable", "unresponsive", "protocol", "tls", "auth",
                               "model_missing", "model_not_ready"})
#: kinds after which the connection (channel) is rebuilt before the next attempt
TRANSPORT_KINDS = frozenset({"unreachable", "unresponsive", "protocol", "tls"})


class SequenceError(RuntimeError):
    """A sequence request failed. ``kind``: unavailable, timeout, rejected or dropped.

    ``cause``: the :class:`TritonError` kind behind it (e.g. ``tls``, ``auth``), or ``""``.
    """

    def __init__(self, message: str, kind: str = "rejected", cause: str = ""):
        super().__init__(message)
        self.kind = kind
        self.cause = cause


#: a proxy's "bad gateway / unavailable / gateway timeout" as gRPC or HTTP clients report it
_GATEWAY = re.compile(r"status:? ?50[234]\b")


def is_sequence_dropped(message: str) -> bool:
    """True for the server's "this sequence is unknown, send START" errors."""
    return DROPPED_MARKER.lower() in str(message).lower()


def classify_error(what: str, where: str, exc: BaseException,
                   timeout_s: float) -> TritonError:
    """A :class:`TritonError` for ``exc`` raised by tritonclient, saying what to check."""
    if isinstance(exc, InferenceServerException):
        text, status = exc.message() or str(exc), str(exc.status() or "")
    else:
        text, status = f"{type(exc).__name__}: {exc}", ""
    low = text.lower()
    prefix = f"{what} on {where} failed"
    if _GATEWAY.search(low) or status in ("502", "503", "504"):
        return TritonError(f"{prefix}: a proxy in front of the servers gave up on the one it "
                           f"chose (down or not answering): {text}", "unreachable", gateway=True)
    if "deadline" in low or "timed out" in low or "timeout" in low or \
            status == "StatusCode.DEADLINE_EXCEEDED":
        return TritonError(f"{prefix}: no answer within {timeout_s:.1f} s (server hung or "
                           f"overloaded): {text}", "unresponsive")
    if "tls handshake" in low or "ssl" in low or "certificate" in low:
        why = ("the server does not serve TLS here (set ssl:=false)"
               if "wrong_version_number" in low or "wrong version number" in low else
               "check root_certificates / the server's certificate")
        return TritonError(f"{prefix}: TLS handshake failed: {why}: {text}", "tls")
    if "stream removed" in low or "connection reset" in low:
        return TritonError(f"{prefix}: connection lost (server stopped or crashed): {text}",
                           "unreachable")
    if "expected http/" in low or "httpparseerror" in low or "socket closed" in low or \
            "bad status line" in low or "remotedisconnected" in low:
        return TritonError(f"{prefix}: the port does not speak this protocol (gRPC vs HTTP: "
                           f"tritonserver uses 8001 for gRPC, 8000 for HTTP; or a TLS-only "
                           f"endpoint reached without ssl:=true): {text}", "protocol")
    if "connection refused" in low or "errors resolving" in low or \
            "name or service not known" in low or "failed to connect" in low or \
            isinstance(exc, (ConnectionError, OSError)):
        return TritonError(f"{prefix}: cannot connect (is tritonserver running there, and is "
                           f"the host:port right?): {text}", "unreachable")
    if "restricted" in low or "unauthenticated" in low or "permission" in low or \
            "invalid metadata" in low or status in ("401", "403", "StatusCode.UNAUTHENTICATED",
                                                     "StatusCode.PERMISSION_DENIED"):
        return TritonError(f"{prefix}: the server rejected the request's credentials (check "
                           f"auth_token_env/auth_token_file, auth_header, auth_scheme): {text}",
                           "auth")
    if "unknown model" in low or "is not found" in low:
        return TritonError(f"{prefix}: {text}", "model_missing")
    if "unavailable" in low or status == "StatusCode.UNAVAILABLE":
        return TritonError(f"{prefix}: {text}", "unreachable")
    return TritonError(f"{prefix}: {text}", "rejected")


def sequence_error(what: str, where: str, exc: BaseException, timeout_s: float) -> SequenceError:
    """A :class:`SequenceError` for ``exc`` from tritonclient: ``dropped`` when the server no
    longer knows the sequence, else the classified error mapped onto the sequence kinds
    (``unresponsive`` -> ``timeout``; server/connection problems -> ``unavailable``)."""
    if isinstance(exc, InferenceServerException):
        message = exc.message() or str(exc)
        if is_sequence_dropped(message):
            return SequenceError(message, "dropped")
        if str(exc.status() or "") == "StatusCode.CANCELLED":
            return SequenceError(f"{what} on {where} failed (cancelled: connection closed): "
                                 f"{message}", "unavailable", "unreachable")
    error = classify_error(what, where, exc, timeout_s)
    kind = ("timeout" if error.kind == "unresponsive" else
            "unavailable" if error.kind in UNAVAILABLE_KINDS else "rejected")
    return SequenceError(str(error), kind, error.kind)
