"""Where the bundled tritonserver (the ``nvidia-pytriton`` wheel in its own venv) is: one lookup
for every tool, from a checkout, a colcon or pip install, and another package's tests.

Looked up in this order; the first that holds ``lib/python3*/site-packages/pytriton`` wins
(an explicit path or the variable, when given, is the only place looked at):

1. an explicit path (``--server-venv`` of the tools, ``server_venv=`` in Python);
2. the environment variable ``TRITON_ROS_SERVER_VENV``;
3. the path recorded in ``$XDG_CONFIG_HOME/triton_ros/server_venv`` (default
   ``~/.config/triton_ros/server_venv``; one line, an absolute path), written by
   ``scripts/bootstrap.sh`` (``python -m triton_ros.tools.server_venv --record DIR``);
4. ``.venv-server`` beside the package's files (a source checkout).

The record lives in the user's config directory, not in the install, because the server venv is
made by the checkout's bootstrap while the package may be installed anywhere (colcon workspaces,
venvs) afterwards; one record serves them all. When nothing is found,
:class:`ServerVenvNotFound` carries one line naming every place looked at and how to fix it.

``python -m triton_ros.tools.server_venv`` prints the venv found (exit 0) or that line (exit 2).
"""
import argparse
import os
import sys
from pathlib import Path

SERVER_VENV_ENV = "TRITON_ROS_SERVER_VENV"
RECORD_NAME = Path("triton_ros") / "server_venv"


class ServerVenvNotFound(FileNotFoundError):
    """No server venv with nvidia-pytriton; ``str()`` is the one-line message for users."""


def record_path() -> Path:
    """The user-level file holding the recorded server venv path."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / RECORD_NAME


def pytriton_site(venv: Path) -> Path | None:
    """``site-packages`` of ``venv`` when it holds pytriton, else None."""
    found = sorted(Path(venv).glob("lib/python3*/site-packages/pytriton"))
    return found[0].parent if found else None


def _checkout_venv() -> Path | None:
    try:
        from triton_ros.resources import share_dir
        return share_dir() / ".venv-server"
    except Exception:  # an install the ament index cannot find: no checkout to look in
        return None


def find_server_venv(explicit: Path | str | None = None) -> Path:
    """The server venv (see the module docstring for the order); ServerVenvNotFound if none."""
    looked = []
    candidates = []
    # An explicit path or the variable is what the user asked for: used alone, never passed over
    # for another venv. A stale record falls through to the checkout.
    if explicit:
        candidates.append(("--server-venv", Path(explicit)))
    elif os.environ.get(SERVER_VENV_ENV):
        looked.append("--server-venv: not given")
        candidates.append((f"${SERVER_VENV_ENV}", Path(os.environ[SERVER_VENV_ENV])))
    else:
        looked += ["--server-venv: not given", f"${SERVER_VENV_ENV}: not set"]
        record = record_path()
        try:
            recorded = record.read_text().strip()
        except OSError:
            recorded = ""
        if recorded:
            candidates.append((f"record {record}", Path(recorded)))
        else:
            looked.append(f"record {record}: none")
        checkout = _checkout_venv()
        if checkout is not None:
            candidates.append(("checkout", checkout))
    for where, venv in candidates:
        if pytriton_site(venv) is not None:
            return venv
        looked.append(f"{where}: {venv} has no nvidia-pytriton")
    raise ServerVenvNotFound(
        "no bundled tritonserver found (" + "; ".join(looked) + "). Fix: run "
        "scripts/bootstrap.sh in a triton_ros checkout (it records its .venv-server), or set "
        f"{SERVER_VENV_ENV} (or pass --server-venv) to a venv with nvidia-pytriton")


def record_server_venv(venv: Path) -> Path:
    """Write ``venv`` (made absolute) to :func:`record_path`; returns the record's path."""
    venv = Path(venv).resolve()
    if pytriton_site(venv) is None:
        raise ServerVenvNotFound(f"{venv} has no nvidia-pytriton; nothing recorded")
    record = record_path()
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(record.name + f".{os.getpid()}")
    tmp.write_text(f"{venv}\n")
    tmp.replace(record)  # atomic: a tool reading it never sees half a path
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, metavar="VENV",
                        help="record VENV as the server venv for every later lookup")
    args = parser.parse_args(argv)
    try:
        if args.record:
            print(f"recorded {args.record.resolve()} in {record_server_venv(args.record)}")
        else:
            print(find_server_venv())
    except ServerVenvNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
