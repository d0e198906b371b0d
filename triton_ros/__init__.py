"""triton_ros: bridge ROS 2 camera and sensor topics to NVIDIA Triton Inference Server.

The core modules (model discovery, Triton client, pre-processing, decoders) import no ROS code;
``triton_ros.ros`` holds the thin rclpy adapters.
"""
