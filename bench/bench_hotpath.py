#!/usr/bin/env python3
"""Per-stage cost of the node's frame path, in this process, without a server.

For real frames (vtest.avi resized to 640x480, 1280x720, 1920x1080) serialized as bgr8
sensor_msgs/Image: deserialize (rclpy), ``image_msg_to_bgr``, ``image_cdr_to_bgr`` (the
serialized message straight to pixels, what a raw subscription would allow), the SSD's
``Preprocessor`` (300x300 RGB uint8 NHWC, stretch), np.stack of one frame (what ``Detector``
did before it sent a view), the copy into a shared memory region (``Region.write``),
``decode_tfod`` + ``filter_detections`` + ``boxes_to_source`` on SSD-shaped outputs holding 20
detections, and ``detections_to_msg``; and the floor of one rclpy executor wake-up
(``spin_once`` with nothing ready), paid once per image callback.
Best of ``--repeats`` runs of ``--iterations`` calls each (the best run is the one least
disturbed by other work on the machine), microseconds per call.

    .venv/bin/python bench/bench_hotpath.py [--iterations 200] [--repeats 5]
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402
import numpy as np  # noqa: E402


def best_us(fn, iterations: int, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        best = min(best, (time.perf_counter() - start) / iterations)
    return best * 1e6


def ssd_outputs(count: int) -> dict:
    rng = np.random.default_rng(0)
    boxes = np.zeros((1, 100, 4), np.float32)
    y, x = rng.uniform(0, 0.5, count), rng.uniform(0, 0.5, count)
    boxes[0, :count] = np.stack([y, x, y + 0.3, x + 0.2], axis=1)
    scores = np.zeros((1, 100), np.float32)
    scores[0, :count] = np.sort(rng.uniform(0.3, 1.0, count))[::-1]
    classes = np.zeros((1, 100), np.float32)
    classes[0, :count] = rng.integers(1, 90, count)
    return {"num_detections": np.array([[count]], np.float32), "detection_boxes": boxes,
            "detection_scores": scores, "detection_classes": classes}


def spin_floor_us(iterations: int, repeats: int) -> float:
    """What rclpy's SingleThreadedExecutor costs per wake-up before any callback runs: a plain
    node (its parameter services only), ``spin_once(timeout_sec=0)`` with nothing ready. The
    node pays at least this per image callback."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    h.ros_env()
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_hotpath_spin", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        return best_us(lambda: executor.spin_once(timeout_sec=0), iterations, repeats)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--detections", type=int, default=20)
    args = parser.parse_args(argv)
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from triton_ros.decoders import TfodOutputs, decode_tfod, filter_detections
    from triton_ros.image_conversion import image_cdr_to_bgr
    from triton_ros.labels import LabelMap
    from triton_ros.preprocess import PreprocessConfig, Preprocessor
    from triton_ros.resources import config_path
    from triton_ros.ros.messages import detections_to_msg, image_msg_to_bgr
    from triton_ros.shared_memory import Region, new_owner_prefix

    labels = LabelMap.from_file(config_path("labels", "coco90.txt"))
    prep = Preprocessor(PreprocessConfig(width=300, height=300))
    outputs = ssd_outputs(args.detections)
    region = Region(new_owner_prefix() + "0", 300 * 300 * 3)
    rows = []
    print(f"machine: {h.machine()}")
    try:
        for res, (w, hgt) in h.RESOLUTIONS.items():
            frame = h.load_frames(1, w, hgt)[0][0]
            raw = h.image_raw(frame, "cam0")
            msg = deserialize_message(raw, Image)
            bgr = image_msg_to_bgr(msg)
            tensor, tf = prep(bgr)
            dets = decode_tfod(outputs, 300, 300, TfodOutputs(), labels)[0]
            dets = filter_detections(dets, 0.5, 100)
            dets.boxes = tf.boxes_to_source(dets.boxes)
            stages = {  # in the order the node runs them
                "deserialize Image (rclpy)": lambda: deserialize_message(raw, Image),
                "image_msg_to_bgr": lambda: image_msg_to_bgr(msg),
                "image_cdr_to_bgr (raw, replaces both)": lambda: image_cdr_to_bgr(raw),
                "Preprocessor (300x300 RGB)": lambda: prep(bgr),
                "np.stack (old batching; now a view)": lambda: np.stack([tensor]),
                "Region.write": lambda: region.write(tensor[None]),
                "decode+filter+map": lambda: tf.boxes_to_source(filter_detections(
                    decode_tfod(outputs, 300, 300, TfodOutputs(), labels)[0], 0.5, 100).boxes),
                f"detections_to_msg ({len(dets)} dets)":
                    lambda: detections_to_msg(dets, msg.header),
            }
            for stage, fn in stages.items():
                rows.append([res, stage, best_us(fn, args.iterations, args.repeats)])
                print(f"{res:<10} {stage:<32} {rows[-1][2]:9.1f} us", flush=True)
    finally:
        region.destroy()
    floor = spin_floor_us(args.iterations * 5, args.repeats)
    rows.append(["-", "rclpy spin_once, nothing ready (node with 7 services)", floor])
    print(f"{'-':<10} {rows[-1][1]:<32} {floor:9.1f} us", flush=True)
    print()
    print(h.markdown_table(["input", "stage", "us / call"], rows))
    print(f"\nload average at end: {h.load_avg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
