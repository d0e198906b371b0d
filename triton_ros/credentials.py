"""Request headers that carry a secret (auth token), read from the environment or a file.

The token is never taken from a plain parameter value (that would put it in launch files, YAML
and ``ros2 param dump``) and never logged: :class:`SecretHeaders` prints header names only.
Errors name the variable or file, never its content.
"""
import logging
import os
import stat

_log = logging.getLogger(__name__)


class SecretHeaders(dict):
    """``dict[str, str]`` of request headers whose repr/str hides the values."""

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: '***'" for k in self) + "}"

    __str__ = __repr__


def read_token(token_env: str = "", token_file: str = "") -> str:
    """The token from environment variable ``token_env`` or file ``token_file`` (exactly one).

    Surrounding whitespace (a trailing newline) is stripped; an unset/empty source is a
    ValueError naming the variable or file. A token file readable by group/others is used but
    warned about.
    """
    if bool(token_env) == bool(token_file):
        raise ValueError("give exactly one of token_env (an environment variable name) "
                         "or token_file (a path)")
    if token_env:
        token = os.environ.get(token_env, "").strip()
        if not token:
            raise ValueError(f"environment variable {token_env!r} is not set or empty")
        return token
    try:
        mode = os.stat(token_file).st_mode
        with open(token_file, encoding="utf-8") as handle:
            token = handle.read().strip()
    except OSError as exc:
        raise ValueError(f"cannot read token file {token_file!r}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        _log.warning("token file %s is accessible by group/others (mode %o); chmod 600 it",
                     token_file, stat.S_IMODE(mode))
    if not token:
        raise ValueError(f"token file {token_file!r} is empty")
    return token


def check_headers(headers: dict) -> None:
    """Raise ValueError for a header gRPC/HTTP cannot carry (names the header, never the value).

    Values must be printable ASCII without leading/trailing blanks (gRPC metadata rules; a
    newline would also split an HTTP header); names lower-case ``[0-9a-z-_.]``.
    """
    for name, value in headers.items():
        name = str(name)
        if not name or any(not (c.isascii() and (c.isalnum() or c in "-_.")) for c in name):
            raise ValueError(f"invalid header name {name!r}")
        value = str(value)
        if value != value.strip() or any(not 0x20 <= ord(c) <= 0x7E for c in value):
            raise ValueError(f"the value of header {name!r} (the auth token) has characters a "
                             "request header cannot carry (control characters such as a newline "
                             "inside it, non-ASCII, or surrounding blanks); fix the token source")


def auth_headers(token_env: str = "", token_file: str = "", header: str = "authorization",
                 scheme: str = "Bearer") -> SecretHeaders:
    """``{header: "<scheme> <token>"}`` (just the token when ``scheme`` is empty).

    E.g. ``auth_headers(token_env="TRITON_TOKEN")`` for a proxy expecting
    ``Authorization: Bearer ...``. For tritonserver's own restricted APIs
    (``--grpc-restricted-protocol=inference:infer-key=<value>``,
    ``--http-restricted-api=inference:infer-key=<value>``) use ``scheme=""`` and
    ``header="triton-grpc-protocol-infer-key"`` over gRPC (the server expects that prefix),
    ``header="infer-key"`` over HTTP. Header names are lower-cased (gRPC metadata keys must be).
    """
    if not header or any(c.isspace() or c == ":" for c in header):
        raise ValueError(f"invalid header name {header!r}")
    token = read_token(token_env, token_file)
    value = f"{scheme} {token}" if scheme else token
    headers = SecretHeaders({header.lower(): value})
    check_headers(headers)
    return headers
