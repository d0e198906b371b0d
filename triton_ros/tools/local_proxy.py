"""Start and stop a local proxy (nginx, or HAProxy) in front of several tritonservers, on 127.0.0.1.

The proxy is Debian's nginx 1.22 (``grpc_pass``, ``http2`` and ``hash ... consistent`` built in)
or HAProxy 2.6 (``proto h2``, ``balance hdr()``), unpacked by scripts/bootstrap.sh into
``<repo>/.cache/proxy`` (or ``TRITON_ROS_NGINX`` / ``TRITON_ROS_HAPROXY``, or one on PATH). It runs
like :class:`LocalTritonServer`: a process group of its own, in the foreground (nginx: master +
one worker, ``daemon off``), every file it writes (config, pid, logs, temp bodies) in a private
temp directory, stopped with SIGTERM and then a kill of whatever is left of its group.

Routing contract (what the fleet relies on; config/proxy/nginx-triton.conf and
haproxy-triton.cfg are the annotated deployment versions of the same configs):

* a request carrying the routing header (default ``x-triton-sequence-id``, value = the sequence's
  correlation id) goes to the upstream chosen by consistent hashing of that value, so every
  request and stream of one sequence lands on one server while that server is up;
* a request without it (stateless detection) goes to the upstream with the fewest requests in
  flight (round robin among equals), so detection spreads over all servers. nginx's ``hash``
  with an empty key would send all of them to one upstream, hence two upstream groups (backends)
  picked by the presence of the header;
* a server that refuses connections is marked failed (nginx: for ``fail_timeout_s``; HAProxy:
  until its active check passes again) and its requests go to another one (a sequence then lands
  on another server, which asks for START); a request in flight on a server that dies fails
  (gRPC UNAVAILABLE / HTTP 502);
* a server that hangs (accepts, never answers): a stateless request waits at most
  ``upstream_timeout_s`` for it, is then retried once on another server (inference without a
  sequence is safe to repeat) and the hung server is marked failed (nginx: for
  ``fail_timeout_s``); size ``upstream_timeout_s`` below the nodes' ``request_timeout_s`` so the
  retry fits in the client's deadline (about half). Sequence requests are never retried after
  they were sent (the state would advance twice) and keep long timeouts (streams stay open);
  HAProxy also checks each server's readiness actively (``GET /v2/health/ready`` on its HTTP
  port every ``check_interval_s``), which takes a hung server out for sequences too; open-source
  nginx has no active checks (only the passive ones above).

Each request is logged with its routing header and the upstream that served it:
:meth:`LocalProxy.access_records` reads them back.

Usage as a tool (runs until Ctrl-C / SIGTERM)::

    python -m triton_ros.tools.local_proxy --grpc 127.0.0.1:8001 --grpc 127.0.0.1:9001 \\
        --http 127.0.0.1:8000 --http 127.0.0.1:9000 --grpc-port 7001 --http-port 7000
"""
import argparse
import os
import pwd
import grp
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from triton_ros.resources import share_dir
from triton_ros.tools.local_server import _exited, free_ports, kill_process_group

NGINX_ENV = "TRITON_ROS_NGINX"
HAPROXY_ENV = "TRITON_ROS_HAPROXY"
KINDS = ("nginx", "haproxy")
DEFAULT_ROUTING_HEADER = "x-triton-sequence-id"
_HEADER_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_LOG_FIELDS = ("request_id", "route", "upstream", "status", "grpc_status", "request_time",
               "upstream_time", "uri")


class ProxyUnavailable(RuntimeError):
    """No usable proxy binary here (tests skip with this message)."""


def find_nginx() -> Path:
    """The nginx binary: ``$TRITON_ROS_NGINX``, bootstrap's ``.cache/proxy``, or PATH.

    Raises :class:`ProxyUnavailable` with what to do when none is found or it lacks gRPC/HTTP2.
    """
    candidates = []
    if os.environ.get(NGINX_ENV):
        candidates.append(Path(os.environ[NGINX_ENV]))
    candidates.append(share_dir() / ".cache" / "proxy" / "usr" / "sbin" / "nginx")
    on_path = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK)
                                        else None)
    if on_path:
        candidates.append(Path(on_path))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            try:
                run = subprocess.run([str(path), "-V"], capture_output=True, text=True,
                                     timeout=10)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ProxyUnavailable(f"{path} does not run: {exc}") from exc
            version = run.stderr
            if run.returncode != 0:
                raise ProxyUnavailable(f"{path} -V exited with code {run.returncode}: "
                                       f"{version.strip()}")
            if "--with-http_v2_module" not in version or "--without-http_grpc_module" in version:
                raise ProxyUnavailable(f"{path} lacks HTTP/2 or gRPC proxying: {version}")
            return path
    raise ProxyUnavailable(
        "no nginx binary: run scripts/bootstrap.sh (it unpacks Debian's nginx into .cache/proxy), "
        f"install nginx, or set {NGINX_ENV}")


def find_haproxy() -> tuple[Path, dict]:
    """The HAProxy binary (``$TRITON_ROS_HAPROXY``, bootstrap's ``.cache/proxy``, or PATH) and
    the environment it runs with (``LD_LIBRARY_PATH`` for the libraries unpacked beside it).

    Raises :class:`ProxyUnavailable` when none runs here.
    """
    unpacked = share_dir() / ".cache" / "proxy"
    candidates = [Path(os.environ[HAPROXY_ENV])] if os.environ.get(HAPROXY_ENV) else []
    candidates.append(unpacked / "usr" / "sbin" / "haproxy")
    if shutil.which("haproxy"):
        candidates.append(Path(shutil.which("haproxy")))
    env = dict(os.environ)
    libs = unpacked / "usr" / "lib" / "x86_64-linux-gnu"
    if libs.is_dir():
        env["LD_LIBRARY_PATH"] = ":".join(filter(None, [str(libs),
                                                        env.get("LD_LIBRARY_PATH", "")]))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            try:
                run = subprocess.run([str(path), "-v"], capture_output=True, text=True,
                                     timeout=10, env=env)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ProxyUnavailable(f"{path} does not run: {exc}") from exc
            if run.returncode != 0:
                raise ProxyUnavailable(f"{path} -v exited with code {run.returncode}: "
                                       f"{run.stderr.strip()}")
            return path, env
    raise ProxyUnavailable("no haproxy binary: run scripts/bootstrap.sh (it unpacks Debian's "
                           f"haproxy into .cache/proxy), install haproxy, or set {HAPROXY_ENV}")


def haproxy_config(grpc_upstreams, http_upstreams, grpc_port: int, http_port: int,
                   routing_header: str = DEFAULT_ROUTING_HEADER, run_as_root: bool = False,
                   check_interval_s: float = 1.0, upstream_timeout_s: float = 2.0) -> str:
    """The haproxy.cfg text for the same routing as :func:`nginx_config` (HAProxy >= 2.2).

    Keyed requests: ``balance hdr(<header>)`` + ``hash-type consistent``; the rest:
    ``balance leastconn`` with ``timeout server`` = ``upstream_timeout_s`` and a retry on another
    server after a response timeout (module docstring). Servers get an active readiness check
    every ``check_interval_s`` (``GET /v2/health/ready`` on the server's HTTP port, the one at
    the same index in ``http_upstreams``; a TCP check when there is none: a hung server passes
    that) plus a passive one (a failed connection marks the server down). The access log goes
    to stdout.
    """
    if not _HEADER_RE.match(routing_header):
        raise ValueError(f"routing_header {routing_header!r}: lower-case letters, digits, '-'")
    interval_ms = int(check_interval_s * 1000)
    check = (f"check inter {interval_ms} fall 1 rise 1 "
             "observe layer4 error-limit 1 on-error mark-down")
    ready_check = ["    option httpchk", "    http-check send meth GET uri /v2/health/ready",
                   "    http-check expect status 200", f"    timeout check {interval_ms}ms"]
    text = ["# Written by triton_ros.tools.local_proxy; see config/proxy/haproxy-triton.cfg.",
            "global", "    log stdout format raw local0",
            # Frames are ~1 MB: with the defaults (64 KB HTTP/2 upload window, 16 KB buffers)
            # a 640x480 gRPC request took ~8 ms longer through HAProxy here, with these ~2 ms.
            "    tune.h2.initial-window-size 1048576",
            # A request is retried on another server only if it fits in one buffer: 1 MB holds
            # a 640x480 bgr8 frame or an SSD input (270 KB), not a 1080p frame (those are not
            # retried by the proxy; the client's timeout then applies).
            "    tune.bufsize 1048576"]
    if run_as_root:
        text += ["    uid 65534", "    gid 65534"]
    text += ["defaults", "    mode http", "    log global",
             '    log-format "%rt \\"%[capture.req.hdr(0)]\\" \\"%si:%sp\\" %ST \\"-\\" '
             '%Ta \\"%Tr\\" \\"%HP\\""',
             "    option dontlognull",  # connections without a request (port probes)
             "    timeout connect 2s", "    timeout client 1h", "    timeout server 1h",
             "    timeout http-keep-alive 1h", "    retries 2", "    option redispatch 1",
             "    retry-on conn-failure empty-response"]
    health = [url.rsplit(":", 1)[1] for url in http_upstreams]
    for name, upstreams, port, proto in (("grpc", grpc_upstreams, grpc_port, " proto h2"),
                                         ("http", http_upstreams, http_port, "")):
        if not upstreams:
            continue
        ready = len(health) == len(upstreams)
        servers = [f"    server {name}{i} {url}{proto} {check}"
                   + (f" port {health[i]} check-proto h1" if ready else "")
                   for i, url in enumerate(upstreams)]
        checks = ready_check if ready else []
        text += [f"frontend triton_{name}", f"    bind 127.0.0.1:{port}{proto}",
                 f"    http-request capture req.hdr({routing_header}) len 64",
                 # gRPC streams too, header or not: a stream is never resent nor cut short
                 f"    use_backend triton_{name}_sequences"
                 f" if {{ req.hdr({routing_header}) -m found }}"
                 " || { path_end /ModelStreamInfer }",
                 f"    default_backend triton_{name}",
                 # stateless: a hung server costs one upstream_timeout_s, then the next server
                 f"backend triton_{name}", "    balance leastconn",
                 f"    timeout server {int(upstream_timeout_s * 1000)}ms",
                 "    option http-buffer-request",   # kept whole, so it can be resent
                 "    retry-on conn-failure empty-response response-timeout", *checks, *servers,
                 # sequences: sent requests are never repeated; streams stay open for long
                 f"backend triton_{name}_sequences", f"    balance hdr({routing_header})",
                 "    hash-type consistent", "    retry-on conn-failure", *checks, *servers]
    return "\n".join(text) + "\n"


def _server_lines(upstreams, max_fails: int, fail_timeout_s: float) -> str:
    return "".join(f"        server {url} max_fails={max_fails} fail_timeout={fail_timeout_s:g}s;\n"
                   for url in upstreams)


def nginx_config(workdir: Path, grpc_upstreams, http_upstreams, grpc_port: int, http_port: int,
                 routing_header: str = DEFAULT_ROUTING_HEADER, max_fails: int = 1,
                 fail_timeout_s: float = 10.0, run_as_root: bool = False,
                 upstream_timeout_s: float = 2.0) -> str:
    """The nginx.conf text for a proxy whose files all live in ``workdir``.

    ``grpc_upstreams``/``http_upstreams``: ``host:port`` of each server's gRPC/HTTP endpoint (an
    empty list leaves that listener out). Routing as in the module docstring.
    """
    if not _HEADER_RE.match(routing_header):
        raise ValueError(f"routing_header {routing_header!r}: lower-case letters, digits, '-'")
    var = "$http_" + routing_header.replace("-", "_")
    timeout = f"{int(upstream_timeout_s * 1000)}ms"
    lines = [
        "# Written by triton_ros.tools.local_proxy; see config/proxy/nginx-triton.conf.",
        "daemon off;",
        "master_process on;",
        "worker_processes 1;",
        f"pid {workdir}/nginx.pid;",
        f"lock_file {workdir}/nginx.lock;",
        f"error_log {workdir}/error.log info;",
    ]
    if run_as_root:
        # Workers drop to nobody; they reach their temp dirs through the 0711 workdir.
        lines.append("user nobody nogroup;")
    lines += ["events { worker_connections 1024; }", "http {"]
    body = f"""
    log_format triton '$request_id "{var}" "$upstream_addr" $status '
                      '"$sent_trailer_grpc_status" $request_time "$upstream_response_time" '
                      '"$uri"';
    access_log {workdir}/access.log triton;
    client_body_temp_path {workdir}/tmp/body;
    proxy_temp_path {workdir}/tmp/proxy;
    fastcgi_temp_path {workdir}/tmp/fastcgi;
    uwsgi_temp_path {workdir}/tmp/uwsgi;
    scgi_temp_path {workdir}/tmp/scgi;
    client_max_body_size 64m;
    client_body_buffer_size 8m;
    client_body_timeout 1h;
    keepalive_requests 1000000;
"""
    if grpc_upstreams:
        servers = _server_lines(grpc_upstreams, max_fails, fail_timeout_s)
        body += f"""
    upstream triton_grpc {{
        least_conn;
{servers}        keepalive 16;
    }}
    upstream triton_grpc_sequences {{
        hash {var} consistent;
{servers}        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{grpc_port} http2;
        location / {{
            error_page 418 = @sequences;
            if ({var}) {{ return 418; }}
            # gRPC streams too, header or not: a stream is never resent nor cut short
            if ($uri ~ /ModelStreamInfer$) {{ return 418; }}
            grpc_pass grpc://triton_grpc;
            grpc_next_upstream error timeout non_idempotent;
            grpc_next_upstream_tries 2;
            grpc_connect_timeout 1s;
            grpc_read_timeout {timeout};
            grpc_send_timeout {timeout};
            grpc_socket_keepalive on;
        }}
        location @sequences {{
            grpc_pass grpc://triton_grpc_sequences;
            grpc_next_upstream error timeout;
            grpc_connect_timeout 2s;
            grpc_read_timeout 1h;
            grpc_send_timeout 1h;
            grpc_socket_keepalive on;
        }}
    }}
"""
    if http_upstreams:
        servers = _server_lines(http_upstreams, max_fails, fail_timeout_s)
        body += f"""
    upstream triton_http {{
        least_conn;
{servers}        keepalive 16;
    }}
    upstream triton_http_sequences {{
        hash {var} consistent;
{servers}        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{http_port};
        location / {{
            error_page 418 = @sequences;
            if ({var}) {{ return 418; }}
            proxy_pass http://triton_http;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout non_idempotent;
            proxy_next_upstream_tries 2;
            proxy_connect_timeout 1s;
            proxy_read_timeout {timeout};
            proxy_send_timeout {timeout};
        }}
        location @sequences {{
            proxy_pass http://triton_http_sequences;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            proxy_read_timeout 1h;
        }}
    }}
"""
    return "\n".join(lines) + body + "}\n"


class LocalProxy:
    """A proxy child process on 127.0.0.1 in front of tritonservers (context manager).

    ``kind``: ``nginx`` (default) or ``haproxy``, same routing (module docstring). HAProxy checks
    its servers actively (``check_interval_s``) besides the passive check.

    ``upstreams``: gRPC ``host:port`` of each server; ``http_upstreams``: their HTTP endpoints
    (optional). ``grpc_url``/``http_url`` are the proxy's ``host:port`` (ports of 0 become free
    ones). ``max_fails``/``fail_timeout_s``: nginx's passive health check (a server whose
    connections fail ``max_fails`` times is skipped for ``fail_timeout_s``);
    ``upstream_timeout_s``: how long a stateless request waits for one server before it is
    retried on another (below the nodes' ``request_timeout_s``).
    """

    def __init__(self, upstreams, http_upstreams=(), routing_header: str = DEFAULT_ROUTING_HEADER,
                 grpc_port: int = 0, http_port: int = 0, binary: Path | None = None,
                 max_fails: int = 1, fail_timeout_s: float = 10.0, kind: str = "nginx",
                 check_interval_s: float = 1.0, upstream_timeout_s: float = 2.0):
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r} not in {list(KINDS)}")
        self.kind, self.check_interval_s = kind, check_interval_s
        self.upstream_timeout_s = upstream_timeout_s
        self.upstreams, self.http_upstreams = list(upstreams), list(http_upstreams)
        if not self.upstreams and not self.http_upstreams:
            raise ValueError("LocalProxy needs at least one upstream")
        self.routing_header = routing_header.lower()
        spare = iter(free_ports(2))  # distinct, for the ports not given
        self.grpc_port = grpc_port or next(spare)
        self.http_port = http_port or next(spare)
        self.binary = Path(binary) if binary else None   # nginx or haproxy
        self._env: dict | None = None
        self.max_fails, self.fail_timeout_s = max_fails, fail_timeout_s
        self.process: subprocess.Popen | None = None
        self.pgid: int | None = None
        self.workdir: Path | None = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def config_text(self) -> str:
        assert self.workdir is not None, "start() lays out the workdir"
        if self.kind == "haproxy":
            return haproxy_config(self.upstreams, self.http_upstreams, self.grpc_port,
                                  self.http_port, self.routing_header, os.geteuid() == 0,
                                  self.check_interval_s, self.upstream_timeout_s)
        return nginx_config(self.workdir, self.upstreams, self.http_upstreams, self.grpc_port,
                            self.http_port, self.routing_header, self.max_fails,
                            self.fail_timeout_s, run_as_root=os.geteuid() == 0,
                            upstream_timeout_s=self.upstream_timeout_s)

    def _layout(self) -> Path:
        self.workdir = Path(tempfile.mkdtemp(prefix="triton_ros_proxy_"))
        (self.workdir / "tmp").mkdir()
        if os.geteuid() == 0:
            # nginx as root runs its workers as nobody: let them traverse to their temp dirs
            # (created and chowned by the master), nothing else is readable to them.
            pwd.getpwnam("nobody"), grp.getgrnam("nogroup")  # KeyError: say which is missing
            self.workdir.chmod(0o711)
            (self.workdir / "tmp").chmod(0o711)
        conf = self.workdir / ("haproxy.cfg" if self.kind == "haproxy" else "nginx.conf")
        conf.write_text(self.config_text())
        return conf

    def _cmd(self, conf: Path, *extra: str) -> list[str]:
        if self.kind == "haproxy":
            # -db: stay in the foreground; -c (config check) comes in ``extra``.
            return [str(self.binary), "-f", str(conf), "-db",
                    *(["-c", "-q"] if "-t" in extra else [])]
        # -e: nginx opens its error log before reading the config; keep even that one here.
        return [str(self.binary), "-p", f"{self.workdir}/", "-c", str(conf),
                "-e", str(self.workdir / "error.log"), *extra]

    def _ports_open(self) -> bool:
        ports = ([self.grpc_port] if self.upstreams else []) + \
                ([self.http_port] if self.http_upstreams else [])
        for port in ports:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    pass
            except OSError:
                return False
        return True

    def start(self, timeout_s: float = 20.0) -> "LocalProxy":
        if self.kind == "haproxy":
            found, self._env = find_haproxy()
            self.binary = self.binary or found
        else:
            self.binary, self._env = self.binary or find_nginx(), None
        conf = self._layout()
        try:
            check = subprocess.run(self._cmd(conf, "-t", "-q"), capture_output=True, text=True,
                                   timeout=timeout_s, env=self._env)
            if check.returncode != 0:
                raise RuntimeError(f"{self.kind} rejected its config ({conf}): "
                                   f"{(check.stderr + check.stdout).strip()}\n{self.error_log()}")
            # nginx writes its own logs; HAProxy logs requests to stdout, the rest to stderr.
            with open(self.workdir / "access.log", "ab") as access, \
                    open(self.workdir / "error.log", "ab") as errors:
                haproxy = self.kind == "haproxy"
                self.process = subprocess.Popen(
                    self._cmd(conf), env=self._env, start_new_session=True,
                    stdout=access if haproxy else subprocess.DEVNULL,
                    stderr=errors if haproxy else subprocess.DEVNULL)
            self.pgid = self.process.pid
            deadline = time.monotonic() + timeout_s
            while not self._ports_open():
                if _exited(self.process):
                    raise RuntimeError(f"{self.kind} exited with code {self.process.wait()}:\n"
                                       f"{self.error_log()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.kind} not listening after {timeout_s:.0f} s:\n"
                                       f"{self.error_log()}")
                time.sleep(0.05)
        except BaseException:
            self.cleanup()
            raise
        return self

    def alive(self) -> bool:
        return self.process is not None and not _exited(self.process)

    def error_log(self) -> str:
        path = self.workdir and self.workdir / "error.log"
        return path.read_text(errors="replace") if path and path.is_file() else ""

    def access_records(self) -> list[dict]:
        """One dict per logged request: ``request_id``, ``route`` (the routing header, '' if
        absent), ``upstream`` (``host:port`` that answered last; retries list every one tried,
        comma-separated), ``status``, ``grpc_status``, ``request_time``, ``upstream_time``,
        ``uri``."""
        path = self.workdir and self.workdir / "access.log"
        if not path or not path.is_file():
            return []
        records = []
        for line in path.read_text(errors="replace").splitlines():
            fields = re.findall(r'"([^"]*)"|(\S+)', line)
            values = [quoted or bare for quoted, bare in fields]
            if len(values) != len(_LOG_FIELDS):
                continue
            record = dict(zip(_LOG_FIELDS, values))
            record["route"] = "" if record["route"] == "-" else record["route"]
            records.append(record)
        return records

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the proxy (fast shutdown), then kill what is left of its process group."""
        if self.process is not None:
            if not _exited(self.process):
                self.process.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + timeout_s
                while not _exited(self.process) and time.monotonic() < deadline:
                    time.sleep(0.05)
            kill_process_group(self.pgid)  # before reaping: the group id stays ours till then
            self.process.wait()
            self.process = None

    def cleanup(self) -> None:
        """Stop the proxy and remove its directory (config, logs, temp files)."""
        self.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> "LocalProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grpc", action="append", default=[], help="a server's gRPC host:port")
    parser.add_argument("--http", action="append", default=[], help="a server's HTTP host:port")
    parser.add_argument("--grpc-port", type=int, default=0)
    parser.add_argument("--http-port", type=int, default=0)
    parser.add_argument("--routing-header", default=DEFAULT_ROUTING_HEADER)
    parser.add_argument("--kind", choices=KINDS, default="nginx")
    args = parser.parse_args(argv)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        proxy = LocalProxy(args.grpc, args.http, args.routing_header, args.grpc_port,
                           args.http_port, kind=args.kind)
        proxy.start()
    except (ValueError, ProxyUnavailable, RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"proxy ready: grpc {proxy.grpc_url}, http {proxy.http_url}; config "
          f"{proxy.workdir}", flush=True)
    try:
        while not stop and proxy.alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        died = not proxy.alive()
        errors = proxy.error_log() if died else ""
        proxy.cleanup()
    if died and not stop:
        print(f"error: {proxy.kind} exited:\n{errors[-2000:]}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
