"""One COCO naming: the same class_filter on the SSD (COCO-90 ids) and YOLO (COCO-80) models.

Real server, real models, real frames (vtest.avi: pedestrians and cars). Issue 17: the YOLO
labels said ``motorbike``, so ``class_filter: [person, motorcycle]`` was a configuration error
on the YOLO model and a valid filter on the SSD one.
"""
import pytest

from triton_ros.client import TritonClient
from triton_ros.decoders import YoloOutputs
from triton_ros.detector import Detector, DetectorConfig

from helpers import video_frames

FILTER = frozenset({"person", "motorcycle"})
MODELS = {
    "ssd_mobilenet_v2_coco": DetectorConfig(class_filter=FILTER),
    "yolov4_tiny_coco": DetectorConfig(class_filter=FILTER, decoder="yolo",
                                       yolo=YoloOutputs(version="v5"), resize="letterbox",
                                       scaling="UNIT"),
}


@pytest.fixture
def client(triton_server, request):
    client = TritonClient(triton_server.grpc_url, request.param, "grpc", timeout_s=60)
    client.wait_until_ready(60)
    yield client
    client.close()


@pytest.mark.parametrize("client", sorted(MODELS), indirect=True)
def test_the_same_class_filter_works_on_both_models(client):
    detector = Detector(client, MODELS[client.model_name])
    assert detector.labels.index("motorcycle") == 3   # COCO id 4 (1-based) / class 3 of 80
    results = detector.detect(video_frames([10, 80, 160]))
    labels = {label for result in results for label in result.labels}
    assert "person" in labels                  # the filter keeps what it names ...
    assert labels <= FILTER, labels            # ... and only that (the frames show cars too)


@pytest.mark.parametrize("client", sorted(MODELS), indirect=True)
def test_a_darknet_name_is_rejected_with_the_coco_name(client):
    config = MODELS[client.model_name]
    with pytest.raises(ValueError, match="the COCO name is 'motorcycle'"):
        Detector(client, DetectorConfig(**{**config.__dict__, "class_filter": frozenset({
            "person", "motorbike"})}))
