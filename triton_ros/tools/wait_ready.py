"""Wait until a Triton server answers ready on its HTTP endpoint (``/v2/health/ready``).

``python -m triton_ros.tools.wait_ready 127.0.0.1:8000 --timeout 120`` exits 0 once the server
(and, with ``--model``, that model) is ready, 1 after the timeout, printing why, 130/143 when
stopped by SIGINT/SIGTERM (quietly: launch's Ctrl-C, no traceback). Used by
``launch/server.launch.py``; stdlib only, so it works wherever the launch file runs.
"""
import argparse
import sys
import time
import urllib.error
import urllib.request

from triton_ros.tools.stop_signals import Interrupted, StopSignals


def ready(url: str, model: str = "", timeout_s: float = 2.0) -> tuple[bool, str]:
    """(ready?, what was seen) for ``http://<url>/v2/health/ready`` (and the model's ready)."""
    path = f"/v2/models/{model}/ready" if model else "/v2/health/ready"
    try:
        with urllib.request.urlopen(f"http://{url}{path}", timeout=timeout_s) as reply:
            return reply.status == 200, f"HTTP {reply.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, str(getattr(exc, "reason", exc))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("http_url", help="host:port of the server's HTTP endpoint")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds")
    parser.add_argument("--model", action="append", default=[], help="also wait for this model")
    args = parser.parse_args(argv)
    signals = StopSignals().install()
    try:
        return wait(args)
    except Interrupted as stop:
        signals.disarm()
        return stop.exit_code


def wait(args) -> int:
    deadline = time.monotonic() + args.timeout
    seen = ""
    for model in [""] + args.model:
        while True:
            ok, seen = ready(args.http_url, model)
            if ok:
                break
            if time.monotonic() >= deadline:
                what = f"model {model!r}" if model else "tritonserver"
                print(f"error: {what} on http://{args.http_url} not ready after "
                      f"{args.timeout:.0f} s (last: {seen})", file=sys.stderr, flush=True)
                return 1
            time.sleep(0.5)
    print(f"tritonserver ready on http://{args.http_url}"
          + (f" with {', '.join(args.model)}" if args.model else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
