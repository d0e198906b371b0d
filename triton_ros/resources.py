"""Where the package's data (config/, launch/) lives: the source tree or share/triton_ros."""
import os
import sys
from pathlib import Path

PACKAGE_NAME = "triton_ros"


def share_dir() -> Path:
    """Return the directory holding ``config/`` and ``launch/``.

    A source checkout (``<repo>/triton_ros/..``) wins, so tests and the demo use the files they sit
    next to; otherwise the ament index's ``share/triton_ros`` of an installed package.
    """
    source_root = Path(__file__).resolve().parent.parent
    if (source_root / "config" / "model_repository").is_dir():
        return source_root
    if not os.environ.get("AMENT_PREFIX_PATH"):  # a venv install without a sourced ROS setup
        prefixed = Path(sys.prefix) / "share" / PACKAGE_NAME
        if prefixed.is_dir():
            return prefixed
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory(PACKAGE_NAME))


def config_path(*parts: str) -> Path:
    """Path of a file under the package's ``config/`` directory."""
    return share_dir().joinpath("config", *parts)
