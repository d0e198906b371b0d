"""Write the sample rosbag2 (MCAP or sqlite3) from a real video: Image, CompressedImage and CameraInfo.

Default input is Debian opencv-doc's ``vtest.avi`` (768x576, 10 fps, pedestrians and cars).
Topics: ``/camera/image_raw`` (bgr8), ``/camera/image_raw/compressed`` (jpeg),
``/camera/camera_info``; ``frame_id`` ``camera_optical_frame``; stamps = bag receive times,
10 fps from ``--start-ns``. The video has no calibration, so CameraInfo carries a nominal pinhole
model (fx = fy = width, principal point at the centre, no distortion).
"""
import argparse
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

FRAME_ID = "camera_optical_frame"
IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_TOPIC = "/camera/image_raw/compressed"
INFO_TOPIC = "/camera/camera_info"


STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


def write_bag(video: Path, out: Path, max_frames: int, start_ns: int,
              storage: str = "mcap") -> int:
    """Write ``out`` (a bag directory, ``storage`` mcap or sqlite3); returns the frame count.

    Both storages get the same messages (same bytes, same timestamps).
    """
    typestore = get_typestore(Stores.ROS2_KILTED)
    Image = typestore.types["sensor_msgs/msg/Image"]
    CompressedImage = typestore.types["sensor_msgs/msg/CompressedImage"]
    CameraInfo = typestore.types["sensor_msgs/msg/CameraInfo"]
    Header = typestore.types["std_msgs/msg/Header"]
    Time = typestore.types["builtin_interfaces/msg/Time"]
    RegionOfInterest = typestore.types["sensor_msgs/msg/RegionOfInterest"]

    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open video {video}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
    period_ns = int(round(1e9 / fps))
    if out.exists():
        shutil.rmtree(out)
    count = 0
    with Writer(out, version=9, storage_plugin=STORAGES[storage]) as writer:
        image_conn = writer.add_connection(IMAGE_TOPIC, Image.__msgtype__, typestore=typestore)
        jpeg_conn = writer.add_connection(COMPRESSED_TOPIC, CompressedImage.__msgtype__,
                                          typestore=typestore)
        info_conn = writer.add_connection(INFO_TOPIC, CameraInfo.__msgtype__, typestore=typestore)
        while count < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            stamp_ns = start_ns + count * period_ns
            header = Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
                            frame_id=FRAME_ID)
            h, w = frame.shape[:2]
            image = Image(header=header, height=h, width=w, encoding="bgr8", is_bigendian=0,
                          step=w * 3, data=np.ascontiguousarray(frame).reshape(-1))
            jpeg = CompressedImage(header=header, format="bgr8; jpeg compressed bgr8",
                                   data=np.frombuffer(cv2.imencode(".jpg", frame)[1], np.uint8))
            f = float(w)
            info = CameraInfo(
                header=header, height=h, width=w, distortion_model="plumb_bob",
                d=np.zeros(5), k=np.array([f, 0, w / 2, 0, f, h / 2, 0, 0, 1.0]),
                r=np.eye(3).reshape(-1), p=np.array([f, 0, w / 2, 0, 0, f, h / 2, 0, 0, 0, 1, 0.0]),
                binning_x=0, binning_y=0,
                roi=RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
            writer.write(image_conn, stamp_ns, typestore.serialize_cdr(image, Image.__msgtype__))
            writer.write(jpeg_conn, stamp_ns,
                         typestore.serialize_cdr(jpeg, CompressedImage.__msgtype__))
            writer.write(info_conn, stamp_ns, typestore.serialize_cdr(info, CameraInfo.__msgtype__))
            count += 1
    return count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="bag directory to (re)create")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--start-ns", type=int, default=1_700_000_000_000_000_000)
    parser.add_argument("--storage", choices=sorted(STORAGES), default="mcap")
    args = parser.parse_args(argv)
    n = write_bag(args.video, args.out, args.frames, args.start_ns, args.storage)
    print(f"wrote {n} frames to {args.out} ({args.storage})")
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
