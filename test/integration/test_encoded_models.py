"""The encoded-image ensembles on the real server (client level, no ROS nodes).

``ssd_mobilenet_v2_coco_encoded`` and ``yolov4_tiny_coco_encoded`` take whole JPEG/PNG files and
answer boxes in source pixels. Checked against the tensor path (the client decodes, resizes and
decodes the output itself; same frames) and against a direct OpenCV-DNN run of the same
network (the oracles of test_detect_node / test_yolo_model). On the sample bag's
``/camera/image_raw/compressed`` JPEG frames (768x576, pedestrians).
"""
import struct
from pathlib import Path
import zlib

import cv2
import numpy as np
import pytest

from triton_ros.client.client import TritonClient
from triton_ros.detections import Detections, ItemError
from triton_ros.detector import Detector, DetectorConfig
from triton_ros.decoders import TfodOutputs, YoloOutputs
from triton_ros.model_parameters import merge_model_parameters
from triton_ros.tools.local_server import process_group_members

from helpers import COMPRESSED_TOPIC, bag_messages
from reference import match_boxes, reference_boxes
from test_yolo_model import reference_run

SCORE = 0.5
TENSOR = {"ssd": ("ssd_mobilenet_v2_coco", DetectorConfig(score_threshold=SCORE)),
          "yolo": ("yolov4_tiny_coco", None)}  # YOLO: from the model's triton_ros.* parameters
ENCODED = {"ssd": "ssd_mobilenet_v2_coco_encoded", "yolo": "yolov4_tiny_coco_encoded"}
PERSON = {"ssd": 1, "yolo": 0}  # the detector's native id (COCO-90 1-based, COCO-80 0-based)


def config_from_model(spec) -> DetectorConfig:
    """What a node with only model_name set runs: defaults + the model's triton_ros.* values."""
    values = {"decoder": "tfod", "tfod_box_format": "yxyx", "tfod_normalized_boxes": True,
              "tfod_class_offset": 1, "input_kind": "", "yolo_version": "v8",
              "resize": "stretch", "scaling": "NONE", "yolo_iou_threshold": 0.45}
    merged, _ = merge_model_parameters(values, set(), spec.parameters, spec.name)
    return DetectorConfig(
        score_threshold=SCORE, decoder=merged["decoder"],
        tfod=TfodOutputs(box_format=merged["tfod_box_format"],
                         normalized=merged["tfod_normalized_boxes"],
                         class_offset=merged["tfod_class_offset"]),
        yolo=YoloOutputs(version=merged["yolo_version"],
                         iou_threshold=merged["yolo_iou_threshold"]),
        resize=merged["resize"], scaling=merged["scaling"])


def detector(server, model, cfg=None, protocol="grpc", **options) -> Detector:
    url = server.grpc_url if protocol == "grpc" else server.http_url
    client = TritonClient(url, model, protocol=protocol, timeout_s=120.0, **options)
    spec = client.model_spec()
    return Detector(client, cfg or config_from_model(spec), spec)


@pytest.fixture(scope="module")
def jpegs(sample_bag):
    """8 JPEG files from the bag (every 5th frame) and the frames they decode to (BGR)."""
    files = [bytes(msg.data) for _, msg in bag_messages(sample_bag, COMPRESSED_TOPIC, 8, 5)]
    return files, [cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR) for f in files]


def assert_same(encoded: Detections, tensor: Detections, tol_px: float = 0.05):
    """Same detections: same classes in the same order, IoU >= 0.9 (in fact equal boxes)."""
    assert encoded.labels == tensor.labels
    assert len(encoded) > 0 or len(tensor) == 0
    ious = match_boxes(encoded.boxes, tensor.boxes)
    assert min(ious, default=1.0) >= 0.9, ious
    # Same JPEG bytes, same decoder (OpenCV), same Preprocessor and decoders: the only
    # difference left is float32 on the wire (boxes, transform): sub-pixel.
    np.testing.assert_allclose(encoded.boxes, tensor.boxes, atol=tol_px)
    np.testing.assert_allclose(encoded.scores, tensor.scores, atol=1e-5)


@pytest.mark.parametrize("kind", ["ssd", "yolo"])
def test_encoded_path_equals_tensor_path_and_oracle(triton_server, jpegs, kind, tmp_path):
    files, frames = jpegs
    model, cfg = TENSOR[kind]
    tensor = detector(triton_server, model, cfg)
    encoded = detector(triton_server, ENCODED[kind])
    assert encoded.encoded_input and encoded.preprocess is None and not tensor.encoded_input
    want = tensor.detect(frames)
    got = encoded.detect_encoded(files)
    assert len(got) == len(files) and not any(isinstance(r, ItemError) for r in got)
    for ours, theirs in zip(got, want):
        assert_same(ours, theirs)
    persons = sum(d.labels.count("person") for d in got)
    assert persons >= len(files)  # pedestrians in every frame: the comparison is not vacuous
    # The oracle: the same network run directly with OpenCV on the decoded frames.
    if kind == "ssd":
        oracle = [reference_boxes(frame, PERSON[kind], SCORE) for frame in frames]
    else:
        oracle, _ = reference_run(frames, tmp_path)
    for dets, expected in zip(got, oracle):
        boxes = dets.boxes[[label == "person" for label in dets.labels]]
        assert len(boxes) == len(expected), (boxes, expected)
        assert min(match_boxes(boxes, expected), default=1.0) >= 0.9
    # The request carried the files (plus 4-byte length prefixes), not tensors.
    sent, received = encoded.last_request_bytes
    assert sent == sum(len(f) + 4 for f in files[-encoded.max_batch:])
    assert received < 8 * 3000


def _png(frame):
    return cv2.imencode(".png", frame)[1].tobytes()


def _jpeg(frame):
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


@pytest.mark.parametrize("kind,protocol,shm", [("ssd", "grpc", "off"), ("yolo", "http", "off"),
                                               ("ssd", "grpc", "on")],
                         ids=["ssd-grpc", "yolo-http", "ssd-grpc-shm"])
def test_batch_of_mixed_sizes_and_formats(triton_server, jpegs, kind, protocol, shm):
    """JPEG and PNG at 768x576 and 384x288 in one request: each answered in its own pixels,
    as the tensor path answers each image alone. BYTES travel in-band even with shared memory
    on (the fixed-size outputs use it)."""
    _, frames = jpegs
    small = cv2.resize(frames[1], (384, 288), interpolation=cv2.INTER_AREA)
    files = [_jpeg(frames[0]), _png(small), _png(frames[2]), _jpeg(small)]
    decoded = [cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR) for f in files]
    encoded = detector(triton_server, ENCODED[kind], protocol=protocol, shared_memory=shm)
    model, cfg = TENSOR[kind]
    tensor = detector(triton_server, model, cfg, protocol=protocol)
    got = encoded.detect_encoded(files)
    for ours, image in zip(got, decoded):
        assert isinstance(ours, Detections)
        assert_same(ours, tensor.detect([image])[0])
        assert (ours.boxes[:, [0, 2]] <= image.shape[1]).all()
        assert (ours.boxes[:, [1, 3]] <= image.shape[0]).all()
    assert len(got[1]) > 0 and len(got[3]) > 0  # the small ones are detected too
    # source_size: each item's own (height, width).
    batch = np.empty((len(files), 1), np.object_)
    batch[:, 0] = files
    out = encoded.client.infer({"encoded_image": batch}, ["source_size", "status"])
    assert out["source_size"].tolist() == [[576, 768], [288, 384], [576, 768], [288, 384]]
    assert out["status"].reshape(-1).tolist() == [b""] * 4
    if shm == "on":
        assert encoded.client.shared_memory_regions()  # shared memory was really used


def test_garbage_item_is_marked_and_its_neighbours_answered(triton_server, jpegs):
    files, frames = jpegs
    encoded = detector(triton_server, ENCODED["yolo"])
    alone = encoded.detect_encoded(files[:2])
    truncated = files[2][:len(files[2]) // 3]
    got = encoded.detect_encoded([files[0], b"not a picture", truncated, b"", files[1]])
    assert isinstance(got[1], ItemError)
    assert got[1].reason == ("not an image OpenCV can read (13 bytes): only JPEG and PNG are "
                             "accepted")
    assert isinstance(got[3], ItemError) and "(0 bytes)" in got[3].reason
    # A JPEG cut short: OpenCV's imdecode refuses it (no partial image).
    assert got[2] == ItemError(f"not an image OpenCV can read ({len(truncated)} bytes)")
    for ours, theirs in zip((got[0], got[4]), alone):
        assert_same(ours, theirs)


def _bomb_png(width: int, height: int) -> bytes:
    """A real PNG of width x height grey zeros, compressed to a small file (a decompression
    bomb: ~1000x smaller than its pixels)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    row = b"\0" * (width + 1)  # filter byte + pixels
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def _group_peak_rss_kib(server) -> int:
    """Sum of the peak resident memory (VmHWM) of the server's processes, KiB."""
    total = 0
    for pid in process_group_members(server.pgid):
        try:
            with open(f"/proc/{pid}/status") as status:
                total += next(int(line.split()[1]) for line in status
                              if line.startswith("VmHWM"))
        except (OSError, StopIteration):
            pass
    return total


def test_decompression_bomb_is_refused_by_the_header_check(triton_server, jpegs):
    files, _ = jpegs
    bomb = _bomb_png(16000, 16000)  # 256 Mpixel: 768 MB as BGR
    assert len(bomb) < 1_000_000
    encoded = detector(triton_server, ENCODED["ssd"])
    encoded.detect_encoded(files[:1])  # warm: the steps' memory before the bomb
    before = _group_peak_rss_kib(triton_server)
    got = encoded.detect_encoded([files[0], bomb])
    after = _group_peak_rss_kib(triton_server)
    # Decoding it adds ~1.5 GB to the peak memory of the server's processes (seen with the
    # limit raised to 3e8 pixels); the header check adds ~nothing.
    assert after - before < 100_000, (before, after)
    assert isinstance(got[0], Detections) and len(got[0]) > 0
    assert got[1] == ItemError("image 16000x16000 is over max_image_pixels 33177600")


STEP_SERVER = r"""
import sys
import cv2, numpy as np
from triton_ros.client.client import TritonClient
from triton_ros.tools.local_server import LocalTritonServer
with LocalTritonServer(models=["ssd_mobilenet_v2_coco_encoded_pre"], log_path=sys.argv[1]) as s:
    s.wait_ready(120)
    client = TritonClient(s.grpc_url, "ssd_mobilenet_v2_coco_encoded_pre", timeout_s=60)
    batch = np.empty((1, 1), np.object_)
    batch[0, 0] = cv2.imencode(".png", np.zeros((20, 30, 3), np.uint8))[1].tobytes()
    out = client.infer({"encoded_image": batch}, ["transform", "status"])
    print("transform", out["transform"][0].tolist(), "status", out["status"][0, 0])
"""


def test_step_models_import_triton_ros_from_any_working_directory(tmp_path):
    """The python-backend stub does not read PYTHONPATH itself; the step model.py honours it
    (local_server sets it). Started from a directory without triton_ros in it (failed before:
    the tests' own server found the package only because it ran in the checkout)."""
    import os
    import subprocess
    import sys
    repo = Path(__file__).resolve().parents[2]
    log = tmp_path / "server.log"
    done = subprocess.run([sys.executable, "-c", STEP_SERVER, str(log)], cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(repo)), capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, (done.stderr[-2000:], log.read_text()[-2000:])
    assert "transform [10.0, 15.0, 0.0, 0.0, 30.0, 20.0] status b''" in done.stdout
