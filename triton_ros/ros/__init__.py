"""rclpy adapters: parameters, message conversion and nodes. Everything else is ROS-free."""
