"""A real YOLO network on the real server: yolov4_tiny_coco (YOLOv4-tiny COCO, Darknet weights).

The reference is a direct OpenCV-DNN run of the same Darknet files, with its own letterbox and
NMS. It runs in the server's venv: the client venv's OpenCV 5 has no Darknet importer.
"""
import json
import os
import subprocess
import time

import numpy as np
import tritonclient.grpc as grpcclient
from sensor_msgs.msg import Image

from triton_ros.preprocess import PreprocessConfig, Preprocessor
from triton_ros.ros.messages import stamp_to_ns

from helpers import IMAGE_TOPIC, REPO, bag_messages, video_frames, wait_until
from reference import match_boxes
from test_detect_node import boxes_xyxy, node_params, start_and_connect

MODEL = "yolov4_tiny_coco"
SIZE = 416
SCORE, IOU = 0.5, 0.45
YOLO_PARAMS = {"model_name": MODEL, "decoder": "yolo", "yolo_version": "v5",
               "resize": "letterbox", "scaling": "UNIT", "score_threshold": SCORE,
               "yolo_iou_threshold": IOU}

# Runs under .venv-server/bin/python: argv = weights dir, frames .npy, output .json.
REFERENCE = r"""
import json, sys
import cv2, numpy as np
weights, frames_path, out_path = sys.argv[1:]
net = cv2.dnn.readNetFromDarknet(f"{weights}/yolov4-tiny.cfg", f"{weights}/yolov4-tiny.weights")
size, score_min, iou = %d, %r, %r
result = {"persons": [], "raw": None}
for index, frame in enumerate(np.load(frames_path)):
    h, w = frame.shape[:2]
    scale = min(size / w, size / h)
    new_w, new_h = round(w * scale), round(h * scale)
    left, top = (size - new_w) // 2, (size - new_h) // 2
    boxed = cv2.copyMakeBorder(cv2.resize(frame, (new_w, new_h)), top, size - new_h - top,
                               left, size - new_w - left, cv2.BORDER_CONSTANT,
                               value=(114, 114, 114))
    net.setInput(cv2.dnn.blobFromImage(boxed, 1 / 255.0, swapRB=True))
    rows = np.concatenate([o.reshape(-1, 85) for o in
                           net.forward(net.getUnconnectedOutLayersNames())])
    if index == 0:
        result["raw"] = rows.tolist()
    # OpenCV's class columns are objectness x class probability: the score itself.
    scores, classes = rows[:, 5:].max(1), rows[:, 5:].argmax(1)
    keep = np.flatnonzero((classes == 0) & (scores >= score_min))
    xywh = [[(r[0] - r[2] / 2) * size, (r[1] - r[3] / 2) * size, r[2] * size, r[3] * size]
            for r in rows[keep]]
    kept = cv2.dnn.NMSBoxes(xywh, scores[keep].tolist(), score_min, iou) if len(keep) else []
    boxes = []
    for i in np.asarray(kept).reshape(-1):
        x, y, bw, bh = xywh[i]
        box = [(x - left) / (new_w / w), (y - top) / (new_h / h),
               (x + bw - left) / (new_w / w), (y + bh - top) / (new_h / h)]
        boxes.append([min(max(v, 0), lim) for v, lim in zip(box, (w, h, w, h))])
    result["persons"].append(boxes)
json.dump(result, open(out_path, "w"))
""" % (SIZE, SCORE, IOU)


def weights_dir():
    return os.environ.get("TRITON_ROS_YOLO_DIR", str(REPO / ".cache/models/yolov4_tiny"))


def reference_run(frames, tmp_path):
    """Direct OpenCV-DNN run: per frame [K, 4] person boxes in source pixels; raw rows of frame 0
    ([2535, 85] as OpenCV gives them: normalised boxes, class columns x objectness)."""
    frames_path, out_path = tmp_path / "frames.npy", tmp_path / "reference.json"
    np.save(frames_path, np.stack(frames))
    python = REPO / ".venv-server" / "bin" / "python"
    done = subprocess.run([str(python), "-c", REFERENCE, weights_dir(), str(frames_path),
                           str(out_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out_path.read_text())
    return ([np.array(b, np.float64).reshape(-1, 4) for b in result["persons"]],
            np.array(result["raw"], np.float32))


def bgr_image(frame, stamp_ns, frame_id):
    msg = Image(encoding="bgr8", height=frame.shape[0], width=frame.shape[1],
                step=frame.shape[1] * 3, data=frame.tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    msg.header.frame_id = frame_id
    return msg


def assert_persons_match(results, expected, frames):
    total = 0
    for result, want, frame in zip(results, expected, frames):
        ours = boxes_xyxy(result, "person")
        assert len(ours) == len(want), (len(ours), len(want), ours, want)
        ious = match_boxes(ours, want)
        assert min(ious, default=1.0) >= 0.9, ious
        for det in result.detections:
            assert SCORE <= det.results[0].hypothesis.score <= 1.0
        assert (ours[:, [0, 2]] >= 0).all() and (ours[:, [0, 2]] <= frame.shape[1]).all()
        assert (ours[:, [1, 3]] >= 0).all() and (ours[:, [1, 3]] <= frame.shape[0]).all()
        total += len(ours)
    return total


def test_output_tensor_is_the_raw_heads_v5_style(triton_server, tmp_path):
    """output0 = OpenCV's two heads: cx, cy, w, h in input pixels, objectness, class probabilities
    *without* the objectness (objectness x probability = OpenCV's class column), nothing zeroed;
    head_13 / head_26 are its two parts."""
    frame = video_frames([0])[0]
    _, raw = reference_run([frame], tmp_path)
    tensor, _ = Preprocessor(PreprocessConfig(SIZE, SIZE, layout="NCHW", dtype="float32",
                                              resize="letterbox", scaling="UNIT"))(frame)
    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    try:
        request = grpcclient.InferInput("images", [1, 3, SIZE, SIZE], "FP32")
        request.set_data_from_numpy(tensor[None])
        names = ["output0", "head_13", "head_26"]
        reply = client.infer(MODEL, [request],
                             outputs=[grpcclient.InferRequestedOutput(n) for n in names])
        out, h13, h26 = (reply.as_numpy(n) for n in names)
    finally:
        client.close()
    assert out.shape == (1, 2535, 85) and h13.shape == (1, 507, 85) and h26.shape == (1, 2028, 85)
    np.testing.assert_array_equal(out, np.concatenate([h13, h26], axis=1))
    rows = out[0]
    np.testing.assert_allclose(rows[:, :4], raw[:, :4] * SIZE, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(rows[:, 4], raw[:, 4], rtol=1e-4, atol=1e-6)
    assert ((rows[:, 5:] >= 0) & (rows[:, 5:] <= 1)).all()
    # OpenCV zeroes class columns <= 0.2 (its [yolo] thresh); the model's are all there.
    shown = raw[:, 5:] > 0
    assert 0 < shown.sum() < shown.size and (rows[:, 5:] > 0).mean() > 0.99
    np.testing.assert_allclose((rows[:, 4:5] * rows[:, 5:])[shown], raw[:, 5:][shown],
                               rtol=1e-3, atol=1e-5)
    assert (raw[:, 5:].max(1) >= SCORE).sum() >= 3  # the frame shows several pedestrians


def test_persons_match_direct_opencv_run(triton_server, sample_bag, start_node, ros_node,
                                         tmp_path):
    """Sample bag frames (768x576, letterboxed with bars above and below) through the node."""
    node, collector, publisher = start_and_connect(
        start_node, ros_node, node_params(triton_server, **YOLO_PARAMS))
    messages = bag_messages(sample_bag, IMAGE_TOPIC, 6, every=15)
    for raw, _ in messages:
        publisher.publish(raw)
        time.sleep(0.05)
    stamps = [stamp_to_ns(msg.header.stamp) for _, msg in messages]
    assert wait_until(lambda: all(s in collector.by_stamp for s in stamps), 120), (
        f"got {len(collector.by_stamp)}/{len(stamps)} arrays; node log:\n{node.output()[-2000:]}")
    from triton_ros.image_conversion import raw_image_to_bgr
    frames = [raw_image_to_bgr(m.encoding, m.height, m.width, m.step, m.data)
              for _, m in messages]
    expected, _ = reference_run(frames, tmp_path)
    results = [collector.by_stamp[s] for s in stamps]
    for result, (_, msg) in zip(results, messages):
        assert result.header.stamp == msg.header.stamp
        assert result.header.frame_id == msg.header.frame_id
    assert assert_persons_match(results, expected, frames) >= len(frames)
    assert "80 labels" in node.output()  # coco80.txt via the model's label_filename
    assert node.alive() and node.stop() == 0


def test_wide_frames_land_in_source_pixels_with_separate_heads(
        triton_server, start_node, ros_node, tmp_path):
    """1280x480 frames (a 768x288 strip of a real video frame, scaled by 5/3): letterbox bars of
    130 px above and below; boxes compared with the reference in source pixels. The node reads
    the two heads as separate outputs (yolo_output:=head_13,head_26)."""
    import cv2
    strips = {0: 0, 60: 144, 120: 288, 180: 200}  # video frame -> first row of its strip
    frames = [cv2.resize(frame[top:top + 288], (1280, 480), interpolation=cv2.INTER_LINEAR)
              for frame, top in zip(video_frames(list(strips)), strips.values())]
    assert frames[0].shape == (480, 1280, 3)
    node, collector, publisher = start_and_connect(
        start_node, ros_node, node_params(triton_server, yolo_output="head_13,head_26",
                                          **YOLO_PARAMS), image_topic="/cam/wide")
    stamps = [1_700_000_000_000_000_000 + i * 100_000_000 for i in range(len(frames))]
    for frame, stamp in zip(frames, stamps):
        publisher.publish(bgr_image(frame, stamp, "wide_camera"))
        time.sleep(0.05)
    assert wait_until(lambda: all(s in collector.by_stamp for s in stamps), 120), (
        f"got {len(collector.by_stamp)}/{len(stamps)} arrays; node log:\n{node.output()[-2000:]}")
    expected, _ = reference_run(frames, tmp_path)
    results = [collector.by_stamp[s] for s in stamps]
    assert all(r.header.frame_id == "wide_camera" for r in results)
    assert assert_persons_match(results, expected, frames) >= len(frames)
    # Persons on both halves: x spans the whole 1280 px width, y stays inside 480 px.
    boxes = np.concatenate([boxes_xyxy(r, "person") for r in results])
    assert (boxes[:, 0] < 640).any() and (boxes[:, 2] > 640).any()
    assert node.alive() and node.stop() == 0


def test_missing_head_is_a_clear_configuration_error(triton_server, start_node):
    node = start_node("triton_ros.ros.detect_node",
                      {"server_url": triton_server.grpc_url, **YOLO_PARAMS,
                       "yolo_output": "head_13,no_such_head"})
    assert node.process.wait(60) == 2
    assert "lacks the yolo decoder's outputs ['no_such_head']" in node.output()
