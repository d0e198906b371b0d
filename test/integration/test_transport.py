"""TritonClient transport on a real tritonserver: system shared memory, TLS, headers, compression.

Frames are real (vtest.avi); models are the repository's SSD-MobileNet-v2 and the
``tensor_echo_stats`` transport probe. Extra servers (TLS, restricted API) load only the probe.
"""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

from helpers import REPO, video_frames, wait_until
from triton_ros import shared_memory as shm
from triton_ros.credentials import auth_headers
from triton_ros.preprocess import PreprocessConfig, Preprocessor
from triton_ros.tools.local_server import LocalTritonServer
from triton_ros.client import TritonClient, TritonError

SSD = "ssd_mobilenet_v2_coco"
SSD_OUTPUTS = ["num_detections", "detection_boxes", "detection_scores", "detection_classes"]
ECHO = "tensor_echo_stats"
PROTOCOLS = ["grpc", "http"]


@pytest.fixture(scope="module")
def frames():
    return video_frames([0, 50, 100, 150, 200, 250])


@pytest.fixture(scope="module")
def ssd_batch(frames):
    """[6, 300, 300, 3] uint8 RGB: the frames as the SSD model takes them."""
    prep = Preprocessor(PreprocessConfig(width=300, height=300, layout="NHWC", dtype="uint8"))
    return np.stack([prep(f)[0] for f in frames])


def url_of(server, protocol):
    return server.grpc_url if protocol == "grpc" else server.http_url


def our_files(prefix: str) -> list[str]:
    return sorted(n for n in os.listdir(shm.SHM_DIR) if n.startswith(prefix))


def registered(client) -> set[str]:
    return {r["name"] for r in client.shared_memory_status()}


def start_server(tmp_path_factory, name, extra_args):
    log = tmp_path_factory.mktemp(name) / "server.log"
    server = LocalTritonServer(log_path=log, extra_args=[
        "--model-control-mode=explicit", f"--load-model={ECHO}", *extra_args])
    try:
        server.start(timeout_s=120)
    except Exception as exc:
        server.cleanup()
        pytest.fail(f"tritonserver ({name}) did not start: {exc}\n{log.read_text()[-3000:]}")
    return server


# -- system shared memory ---------------------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_shared_memory_results_equal_network_results(triton_server, ssd_batch, protocol):
    url = url_of(triton_server, protocol)
    plain = TritonClient(url, SSD, protocol, timeout_s=60)
    client = TritonClient(url, SSD, protocol, timeout_s=60, shared_memory="on")
    try:
        for batch in (ssd_batch[:4], ssd_batch[4:5], ssd_batch[5:6]):
            expected = plain.infer({"input_tensor": batch}, SSD_OUTPUTS)
            got = client.infer({"input_tensor": batch}, SSD_OUTPUTS)
            assert expected["num_detections"].sum() > 0  # real frames, real detections
            for name in SSD_OUTPUTS:
                assert got[name].dtype == expected[name].dtype
                assert np.array_equal(got[name], expected[name]), name
        names = client.shared_memory_regions()
        # one input and four output regions, registered on the server, owner-only files
        assert len(names) == 5 and set(names) <= registered(client)
        assert our_files(names[0].rsplit("_", 1)[0]) == names
        for name in names:
            assert os.stat(os.path.join(shm.SHM_DIR, name)).st_mode & 0o077 == 0
    finally:
        plain.close()
        client.close()
    prefix = names[0].rsplit("_", 1)[0] + "_"
    assert our_files(prefix) == []
    assert not {n for n in registered(plain) if n.startswith(prefix)}


def test_regions_are_reused_and_grown_only_when_needed(triton_server, frames):
    client = TritonClient(triton_server.grpc_url, ECHO, shared_memory="on", timeout_s=30)
    try:
        small = frames[0][None, :100, :100]
        client.infer({"frame": small}, ["channel_mean"])
        first = client.shared_memory_regions()
        client.infer({"frame": frames[1][None, :50, :80]}, ["channel_mean"])
        assert client.shared_memory_regions() == first          # smaller: same regions
        big = np.stack(frames[:2])                               # bigger input and output
        got = client.infer({"frame": big}, ["channel_mean"])["channel_mean"]
        expected = np.array([cv2.mean(f)[:3] for f in big], np.float32)
        assert np.allclose(got, expected, rtol=1e-5)
        grown = client.shared_memory_regions()
        assert not set(grown) & set(first)
        assert set(grown) <= registered(client)
        assert not set(first) & registered(client)
        assert not set(first) & set(os.listdir(shm.SHM_DIR))
    finally:
        client.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_concurrent_shared_memory_requests_keep_their_own_results(triton_server, frames,
                                                                  protocol):
    url = url_of(triton_server, protocol)
    # Each thread sends other frames, crops and batch sizes; a mix-up would show in the means.
    jobs = {t: [frames[(t + i) % len(frames)][None, 10 * t:400 + 20 * i, :500 + 10 * t]
                if i % 2 else np.stack(frames[t:t + 2]) for i in range(6)] for t in range(3)}
    plain = TritonClient(url, ECHO, protocol, timeout_s=60)
    expected = {t: [plain.infer({"frame": x}, ["channel_mean"])["channel_mean"] for x in xs]
                for t, xs in jobs.items()}
    plain.close()
    client = TritonClient(url, ECHO, protocol, timeout_s=60, shared_memory="on")
    barrier = threading.Barrier(3)
    results, errors = {}, []

    def work(t):
        try:
            barrier.wait(timeout=30)
            results[t] = [client.infer({"frame": x}, ["channel_mean"])["channel_mean"]
                          for x in jobs[t]]
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    try:
        assert not errors, errors
        assert client.shared_memory_regions()
        for t in range(3):
            assert len(results[t]) == len(jobs[t])
            for got, want in zip(results[t], expected[t]):
                assert np.array_equal(got, want)
    finally:
        names = client.shared_memory_regions()
        client.close()
    assert names and not set(names) & set(os.listdir(shm.SHM_DIR))


def test_shared_memory_recovers_after_a_server_restart(tmp_path_factory, frames):
    """A restarted server has forgotten the regions: clients register new ones themselves;
    an "auto" client that first meets the server down keeps shared memory for later."""
    # Graceful shutdown waits for open HTTP keep-alive connections: only briefly here.
    server = start_server(tmp_path_factory, "restart", ["--exit-timeout-secs=2"])
    clients = {p: TritonClient(url_of(server, p), ECHO, p, timeout_s=30, shared_memory="on")
               for p in PROTOCOLS}
    frame = frames[1][None]
    expected = np.array([cv2.mean(frame[0])[:3]], np.float32)
    try:
        before = {}
        for protocol, client in clients.items():
            assert np.allclose(client.infer({"frame": frame}, ["channel_mean"])["channel_mean"],
                               expected, rtol=1e-5)
            before[protocol] = client.shared_memory_regions()
        server.stop()
        for protocol in PROTOCOLS:  # clients that start during the outage
            clients["auto " + protocol] = TritonClient(url_of(server, protocol), ECHO, protocol,
                                                       timeout_s=30, shared_memory="auto")
        for client in clients.values():
            with pytest.raises(TritonError):
                client.infer({"frame": frame}, ["channel_mean"])
        server.start(timeout_s=120)
        for client in clients.values():
            client.wait_until_ready(60)
        assert registered(clients["grpc"]) == set()  # a fresh server knows no regions
        for name, client in clients.items():
            got = client.infer({"frame": frame}, ["channel_mean"])["channel_mean"]
            assert np.allclose(got, expected, rtol=1e-5)
            after = client.shared_memory_regions()
            assert after, name
            assert set(after) <= registered(client)
            if name in before:
                assert not set(after) & set(before[name])
                assert not set(before[name]) & set(os.listdir(shm.SHM_DIR))
    finally:
        for client in clients.values():
            client.close()
        server.cleanup()


CRASHING_OWNER = r"""
import sys, time
import tritonclient.grpc as grpcclient
from triton_ros import shared_memory as shm
region = shm.Region(shm.new_owner_prefix() + "0", 4096)
grpcclient.InferenceServerClient(sys.argv[1]).register_system_shared_memory(
    region.name, region.key, region.byte_size)
print(region.name, flush=True)
time.sleep(600)
"""


def test_leftovers_of_a_killed_process_are_removed(triton_server, frames):
    child = subprocess.Popen([sys.executable, "-c", CRASHING_OWNER, triton_server.grpc_url],
                             stdout=subprocess.PIPE, text=True, start_new_session=True,
                             env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        name = child.stdout.readline().strip()
        assert name.startswith(shm.PREFIX), f"child failed (exit {child.poll()})"
        probe = TritonClient(triton_server.grpc_url, ECHO)
        assert name in registered(probe) and name in os.listdir(shm.SHM_DIR)
    finally:
        # The whole group, so Python's resource tracker cannot tidy up: a hard crash.
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    client = TritonClient(triton_server.grpc_url, ECHO, shared_memory="on", timeout_s=30)
    try:
        client.infer({"frame": frames[0][None]}, ["channel_mean"])  # first use cleans up
        assert name not in os.listdir(shm.SHM_DIR)
        assert name not in registered(client)
        assert client.shared_memory_regions()  # and then uses its own regions
    finally:
        client.close()
        probe.close()


def test_auto_uses_shared_memory_for_loopback_urls(triton_server, frames):
    port = triton_server.grpc_port
    for url in (f"127.0.0.1:{port}", f"localhost:{port}"):
        client = TritonClient(url, ECHO, shared_memory="auto", timeout_s=30)
        try:
            client.infer({"frame": frames[0][None]}, ["channel_mean"])
            assert set(client.shared_memory_regions()) <= registered(client)
            assert client.shared_memory_regions()
        finally:
            client.close()


# -- headers (Triton's restricted APIs) --------------------------------------------------------

def key_header(protocol, key):
    """tritonserver expects gRPC restriction headers as ``triton-grpc-protocol-<key>``."""
    return f"triton-grpc-protocol-{key}" if protocol == "grpc" else key


@pytest.fixture(scope="module")
def restricted_server(tmp_path_factory):
    """Every API needs ``infer-key: s3cret`` but shared memory, which needs ``shm-key: k2``.

    HTTP health stays open for the start-up probe; gRPC health is restricted too.
    """
    categories = "metadata,inference,model-config,statistics"
    server = start_server(tmp_path_factory, "restricted", [
        f"--grpc-restricted-protocol=health,{categories}:infer-key=s3cret",
        "--grpc-restricted-protocol=shared-memory:shm-key=k2",
        f"--http-restricted-api={categories}:infer-key=s3cret",
        "--http-restricted-api=shared-memory:shm-key=k2"])
    yield server
    server.cleanup()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_headers_are_sent_with_every_request(restricted_server, frames, protocol, monkeypatch,
                                              tmp_path):
    url = url_of(restricted_server, protocol)
    frame = frames[2][None]
    refused = TritonClient(url, ECHO, protocol, timeout_s=30)
    try:
        with pytest.raises(TritonError, match="restricted"):
            refused.infer({"frame": frame}, ["channel_mean"])
        with pytest.raises(TritonError, match="restricted"):
            refused.model_spec()
    finally:
        refused.close()

    # The two secrets come from where a deployment keeps them: the environment and a file.
    monkeypatch.setenv("TRITON_ROS_TEST_INFER_KEY", "s3cret\n")
    token_file = tmp_path / "shm_key"
    token_file.write_text("k2\n")
    os.chmod(token_file, 0o600)
    headers = auth_headers(token_env="TRITON_ROS_TEST_INFER_KEY", scheme="",
                           header=key_header(protocol, "infer-key"))
    headers.update(auth_headers(token_file=str(token_file), scheme="",
                                header=key_header(protocol, "shm-key")))
    client = TritonClient(url, ECHO, protocol, timeout_s=30, headers=headers,
                          shared_memory="on")
    try:
        assert "s3cret" not in repr(client) and "s3cret" not in str(client)
        client.wait_until_ready(30)
        assert client.model_spec().image_input().layout == "NHWC"
        got = client.infer({"frame": frame}, ["channel_mean"])["channel_mean"]
        assert np.allclose(got, [cv2.mean(frame[0])[:3]], rtol=1e-5)
        assert set(client.shared_memory_regions()) <= registered(client)
        assert client.shared_memory_regions()
        assert client.inference_statistics()
    finally:
        client.close()

    wrong = TritonClient(url, ECHO, protocol, timeout_s=30,
                         headers={key_header(protocol, "infer-key"): "not-the-key"})
    try:
        with pytest.raises(TritonError, match="restricted"):
            wrong.infer({"frame": frame}, ["channel_mean"])
    finally:
        wrong.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_auto_falls_back_to_the_network_when_regions_are_refused(restricted_server, frames,
                                                                 protocol):
    url = url_of(restricted_server, protocol)
    frame = frames[2][None]
    headers = {key_header(protocol, "infer-key"): "s3cret"}  # no shm-key: regions refused
    auto = TritonClient(url, ECHO, protocol, timeout_s=30, headers=headers,
                        shared_memory="auto")
    try:
        for _ in range(2):
            got = auto.infer({"frame": frame}, ["channel_mean"])["channel_mean"]
            assert np.allclose(got, [cv2.mean(frame[0])[:3]], rtol=1e-5)
        assert auto.shared_memory_regions() == []
    finally:
        auto.close()
    mine = lambda: {n for n in os.listdir(shm.SHM_DIR)  # noqa: E731
                    if (shm.owner_of(n) or (0, 0))[1] == os.getpid()}
    before = mine()
    forced = TritonClient(url, ECHO, protocol, timeout_s=30, headers=headers,
                          shared_memory="on")
    try:
        with pytest.raises(TritonError, match="register_system_shared_memory"):
            forced.infer({"frame": frame}, ["channel_mean"])
        assert mine() == before  # the refused region was unlinked again
    finally:
        forced.close()


# -- TLS --------------------------------------------------------------------------------------

def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A throw-away CA, a server cert for 127.0.0.1/localhost, a client cert, an unrelated CA."""
    if shutil.which("openssl") is None:
        pytest.skip("neither the `cryptography` package (not in .venv) nor the openssl CLI "
                    "is available to make test certificates")
    d = tmp_path_factory.mktemp("pki")
    days = ["-days", "2"]
    for ca in ("ca", "other_ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
                 "-out", f"{ca}.pem", *days, "-subj", f"/CN=triton_ros test {ca}", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                  "extendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}.key",
                 "-out", f"{who}.csr", "-subj", f"/CN=triton_ros test {who}", cwd=d)
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{who}.pem", *days, "-extfile", f"{who}.ext",
                 cwd=d)
    return {p.stem if p.suffix == ".pem" else p.stem + "_key": str(p)
            for p in d.iterdir() if p.suffix in (".pem", ".key")}


def _tls_args(pki, mutual):
    return [f"--grpc-use-ssl{'-mutual' if mutual else ''}=true",
            f"--grpc-server-cert={pki['server']}", f"--grpc-server-key={pki['server_key']}",
            f"--grpc-root-cert={pki['ca']}"]


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, pki):
    server = start_server(tmp_path_factory, "tls", _tls_args(pki, mutual=False))
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory, pki):
    server = start_server(tmp_path_factory, "mtls", _tls_args(pki, mutual=True))
    yield server
    server.cleanup()


def _mean_or_error(client, frame):
    try:
        return client.infer({"frame": frame}, ["channel_mean"])["channel_mean"]
    except TritonError as exc:
        return exc
    finally:
        client.close()


def test_grpc_tls_round_trip(tls_server, pki, frames):
    frame = frames[3][None]
    expected = np.array([cv2.mean(frame[0])[:3]], np.float32)
    url = tls_server.grpc_url
    got = _mean_or_error(TritonClient(url, ECHO, timeout_s=30, ssl=True,
                                      root_certificates=pki["ca"]), frame)
    assert isinstance(got, np.ndarray), got
    assert np.allclose(got, expected, rtol=1e-5)
    spec_client = TritonClient(f"localhost:{tls_server.grpc_port}", ECHO, timeout_s=30,
                               ssl=True, root_certificates=pki["ca"])
    try:
        spec_client.wait_until_ready(30)  # the DNS name in the certificate works as well
    finally:
        spec_client.close()
    # Not trusting the server's CA, or not speaking TLS at all, must fail.
    assert isinstance(_mean_or_error(TritonClient(url, ECHO, timeout_s=10, ssl=True,
                                                  root_certificates=pki["other_ca"]), frame),
                      TritonError)
    assert isinstance(_mean_or_error(TritonClient(url, ECHO, timeout_s=10), frame), TritonError)


def test_grpc_mutual_tls_needs_the_client_certificate(mtls_server, pki, frames):
    frame = frames[3][None]
    url = mtls_server.grpc_url
    got = _mean_or_error(TritonClient(url, ECHO, timeout_s=30, ssl=True,
                                      root_certificates=pki["ca"], private_key=pki["client_key"],
                                      certificate_chain=pki["client"]), frame)
    assert isinstance(got, np.ndarray), got
    assert np.allclose(got, [cv2.mean(frame[0])[:3]], rtol=1e-5)
    assert isinstance(_mean_or_error(TritonClient(url, ECHO, timeout_s=10, ssl=True,
                                                  root_certificates=pki["ca"]), frame),
                      TritonError)


class TcpProxy:
    """A 127.0.0.1 TCP relay to ``upstream_port``; counts client->server bytes.

    With ``tls`` (an ``ssl.SSLContext``) it terminates TLS, as an HTTPS proxy in front of
    tritonserver's plain HTTP port would.
    """

    def __init__(self, upstream_port: int, tls: ssl.SSLContext | None = None):
        self.upstream_port, self.tls = upstream_port, tls
        self.bytes_up = 0
        self.handshake_failures = 0
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._open = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                with self._lock:
                    self.handshake_failures += 1
                conn.close()
                return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        self._open += [conn, upstream]
        threading.Thread(target=self._pump, args=(upstream, conn, False), daemon=True).start()
        self._pump(conn, upstream, True)

    def _pump(self, src, dst, count):
        try:
            while data := src.recv(65536):
                if count:
                    with self._lock:
                        self.bytes_up += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self._sock.close()
        for s in self._open:
            try:
                s.close()
            except OSError:
                pass


def test_https_through_a_tls_terminating_proxy(triton_server, pki, frames):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server"], pki["server_key"])
    proxy = TcpProxy(triton_server.http_port, tls=context)
    frame = frames[4][None]
    try:
        client = TritonClient(proxy.url, ECHO, "http", timeout_s=30, ssl=True,
                              root_certificates=pki["ca"])
        assert repr(client).startswith("TritonClient(https://")
        got = _mean_or_error(client, frame)
        assert isinstance(got, np.ndarray), got
        assert np.allclose(got, [cv2.mean(frame[0])[:3]], rtol=1e-5)
        assert proxy.bytes_up > frame.nbytes  # the request really went through the proxy
        failures = proxy.handshake_failures
        assert isinstance(_mean_or_error(TritonClient(proxy.url, ECHO, "http", timeout_s=10,
                                                      ssl=True,
                                                      root_certificates=pki["other_ca"]),
                                         frame), TritonError)
        assert wait_until(lambda: proxy.handshake_failures > failures, 10)  # refused in TLS
    finally:
        proxy.close()


# -- compression -------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_compressed_requests_give_identical_results(triton_server, ssd_batch, protocol):
    url = url_of(triton_server, protocol)
    plain = TritonClient(url, SSD, protocol, timeout_s=60)
    try:
        expected = plain.infer({"input_tensor": ssd_batch[:2]}, SSD_OUTPUTS)
    finally:
        plain.close()
    for algorithm in ("gzip", "deflate"):
        client = TritonClient(url, SSD, protocol, timeout_s=60, compression=algorithm)
        try:
            got = client.infer({"input_tensor": ssd_batch[:2]}, SSD_OUTPUTS)
        finally:
            client.close()
        for name in SSD_OUTPUTS:
            assert np.array_equal(got[name], expected[name]), (algorithm, name)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_compression_shrinks_the_request_on_the_wire(triton_server, protocol):
    upstream = triton_server.grpc_port if protocol == "grpc" else triton_server.http_port
    frame = np.zeros((1, 480, 640, 3), np.uint8)
    frame[:, 100:200, 100:300] = (10, 200, 30)  # compressible, not trivial
    sent = {}
    for compression in ("", "gzip"):
        proxy = TcpProxy(upstream)
        client = TritonClient(proxy.url, ECHO, protocol, timeout_s=30, compression=compression)
        try:
            got = client.infer({"frame": frame}, ["channel_mean"])["channel_mean"]
        finally:
            client.close()
            proxy.close()
        assert np.allclose(got, [cv2.mean(frame[0])[:3]], rtol=1e-5)
        sent[compression] = proxy.bytes_up
    assert sent[""] > frame.nbytes
    assert sent["gzip"] < frame.nbytes / 10, sent
