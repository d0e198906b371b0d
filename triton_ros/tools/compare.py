"""Compare a replay's detections with a golden run (and optionally COCO ground truth).

``compare GOLDEN RUN``: each is a ``detections.json`` or a replay output directory (its
``timing.json`` then adds latency statistics). Frames are matched by stamp, detections by class
with ``--iou`` and ``--score-tolerance`` (:func:`triton_ros.detection_metrics.match_frame`).
Prints per-topic precision/recall of RUN against GOLDEN, frames missing/extra, the worst frames
as a diff (``-`` only in golden, ``+`` only in run), latency statistics; with
``--ground-truth coco.json`` also mAP@0.5 and mAP@0.5:0.95 of both. ``--report DIR`` writes
``report.md`` and PNG plots.

Where header stamps repeat (in either file) frames are matched by their position instead, and the
ground truth must name images by ``frame_index``.

Exit codes: 0 every threshold met; 1 a threshold not met (a regression); 2 an input error (a
missing or unreadable file, an interrupted run, ground truth that names no frame): one line.
"""
import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from triton_ros.detection_metrics import coco_map, entry_box, match_frame, xywh_box
from triton_ros.replay_record import load_detections

EXIT_OK, EXIT_REGRESSION, EXIT_INPUT = 0, 1, 2


class InputError(Exception):
    """A file compare cannot use: one line, exit 2 (never the regression's 1)."""


def load_run(path: Path, what: str) -> dict[str, list[dict]]:
    """{topic: frames} of a replay directory or detections.json; InputError when it is missing,
    unreadable, or from a replay that was interrupted."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} {path} does not exist")
    directory = path if path.is_dir() else path.parent
    summary = directory / "summary.json"
    if summary.is_file():
        try:
            info = json.loads(summary.read_text())
        except (OSError, ValueError):
            info = {}
        if info.get("interrupted"):
            raise InputError(f"{what} {directory} is an interrupted replay ({info.get('signal')} "
                             f"after {info.get('frames')} frames, see its summary.json): "
                             "replay it again to the end")
    file = path / "detections.json" if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"{what} {path} has no detections.json (did its replay finish? see "
                         "its logs)")
    try:
        doc = load_detections(file)
        for frames in doc.values():
            for frame in frames:
                frame["stamp_ns"], frame["processed"], frame["detections"]  # noqa: B018
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{what} {file} is not a replay's detections.json "
                         f"({type(exc).__name__}: {exc})") from None
    return doc


def stamps_repeat(*docs: dict) -> bool:
    """True when a topic of any of ``docs`` has two frames with the same stamp."""
    return any(len({f["stamp_ns"] for f in frames}) < len(frames)
               for doc in docs for frames in doc.values())


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="compare", description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="exit codes: 0 thresholds met, 1 a threshold not met (regression), 2 input error")
    parser.add_argument("golden", type=Path, help="golden detections.json or replay directory")
    parser.add_argument("run", type=Path, help="detections.json or replay directory to check")
    parser.add_argument("--iou", type=float, default=0.5, help="IoU a match needs (>=)")
    parser.add_argument("--score-tolerance", type=float, default=0.05,
                        help="largest score difference a match may have")
    parser.add_argument("--min-recall", type=float, default=1.0)
    parser.add_argument("--min-precision", type=float, default=1.0)
    parser.add_argument("--max-missing-frames", type=int, default=0,
                        help="golden frames the run lacks or left unprocessed")
    parser.add_argument("--max-extra-frames", type=int, default=-1,
                        help="run frames the golden lacks (-1 = no limit)")
    parser.add_argument("--worst", type=int, default=5, help="worst frames to print per topic")
    parser.add_argument("--ground-truth", type=Path, default=None,
                        help="COCO-style annotations (images with stamp_ns or frame_index)")
    parser.add_argument("--report", type=Path, default=None, help="write report.md + PNGs here")
    return parser.parse_args(argv)


@dataclass
class TopicResult:
    topic: str
    golden_frames: int = 0
    run_frames: int = 0
    missing: list = field(default_factory=list)     # golden keys absent/unprocessed in run
    extra: list = field(default_factory=list)       # run keys the golden lacks
    tp: int = 0
    golden_dets: int = 0
    run_dets: int = 0
    frames: list = field(default_factory=list)      # (stamp, index, errors, diff lines)

    @property
    def precision(self) -> float:
        return self.tp / self.run_dets if self.run_dets else 1.0

    @property
    def recall(self) -> float:
        return self.tp / self.golden_dets if self.golden_dets else 1.0


def describe(det: dict) -> str:
    b = det["bbox"]
    track = f" track {det['track_id']}" if "track_id" in det else ""
    return (f"{det['class_id']} {det['score']:.3f} at cx={b['cx']:.1f} cy={b['cy']:.1f} "
            f"w={b['w']:.1f} h={b['h']:.1f}{track}")


def frame_key(frame: dict, index: int, by_index: bool) -> int:
    """What matches a frame across files: its stamp, or its position where stamps repeat."""
    return index if by_index else frame["stamp_ns"]


def compare_topic(topic, golden_frames, run_frames, iou, score_tolerance,
                  by_index: bool = False) -> TopicResult:
    """``by_index``: match frames by position (stamps repeat), else by stamp."""
    result = TopicResult(topic)
    golden = {frame_key(f, i, by_index): f for i, f in enumerate(golden_frames) if f["processed"]}
    run = {frame_key(f, i, by_index): f for i, f in enumerate(run_frames) if f["processed"]}
    result.golden_frames, result.run_frames = len(golden), len(run)
    result.extra = sorted(set(run) - {frame_key(f, i, by_index)
                                      for i, f in enumerate(golden_frames)})
    for index, frame in enumerate(golden_frames):
        stamp = frame_key(frame, index, by_index)
        if not frame["processed"]:
            continue
        gdets = frame["detections"]
        result.golden_dets += len(gdets)
        if stamp not in run:
            result.missing.append(stamp)
            continue
        rdets = run[stamp]["detections"]
        result.run_dets += len(rdets)
        m = match_frame(gdets, rdets, iou, score_tolerance)
        result.tp += len(m.matched)
        lines = [f"- {describe(gdets[i])}" for i in m.golden_only]
        lines += [f"+ {describe(rdets[i])}" for i in m.run_only]
        result.frames.append((stamp, index, m.errors, lines, len(gdets), len(rdets)))
    return result


def load_timing(path: Path) -> dict:
    timing = (path if path.is_dir() else path.parent) / "timing.json"
    if not timing.is_file():
        return {}
    def values(latency):  # per frame (a list, null = unanswered); older files: {stamp: ms}
        items = latency.values() if isinstance(latency, dict) else latency
        return [float(v) for v in items if v is not None]
    try:
        return {t: values(d["latency_ms"])
                for t, d in json.loads(timing.read_text())["topics"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{timing} is not a replay's timing.json ({exc})") from None


def latency_line(values) -> str:
    if not values:
        return "n/a"
    v = np.asarray(values)
    return (f"n={len(v)} mean {v.mean():.1f} ms, p50 {np.percentile(v, 50):.1f}, "
            f"p90 {np.percentile(v, 90):.1f}, p99 {np.percentile(v, 99):.1f}, max {v.max():.1f}")


def ground_truth_boxes(path: Path, frames: list[dict], by_index: bool = False) -> dict:
    """{frame key: [(class name, xyxy)]} from a COCO file (keys as :func:`frame_key`).

    Each image names its frame with ``stamp_ns`` or ``frame_index`` (0-based position among
    ``frames``, the run's input images in order); InputError (one line) for an image with
    neither, which is what labelling tools write until one is added, for a frame_index outside
    the run, or for stamp_ns where stamps repeat. Images beyond the run's frames are skipped.
    """
    try:
        coco = json.loads(Path(path).read_text())
        names = {c["id"]: c["name"] for c in coco["categories"]}
        images, annotations = coco["images"], coco["annotations"]
    except FileNotFoundError:
        raise InputError(f"ground truth {path} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"ground truth {path} is not a COCO file ({type(exc).__name__}: "
                         f"{exc})") from None
    image_key = {}
    for image in images:
        if "frame_index" in image:
            index = int(image["frame_index"])
            if not 0 <= index < len(frames):
                continue  # a labelled frame the run did not play (e.g. --frames 30)
            image_key[image["id"]] = frame_key(frames[index], index, by_index)
        elif "stamp_ns" in image:
            if by_index:
                raise InputError(f"ground truth {path} names images by stamp_ns but the run's "
                                 "stamps repeat: give each image its frame_index instead")
            image_key[image["id"]] = int(image["stamp_ns"])
        else:
            raise InputError(
                f"ground truth {path}: image {image.get('id')} "
                f"({image.get('file_name', 'no file_name')}) has neither stamp_ns nor "
                "frame_index: add one per image (frame_index = its 0-based position among the "
                "replayed images)")
    boxes = {key: [] for key in image_key.values()}
    for ann in annotations:
        if ann.get("image_id") in image_key and not ann.get("iscrowd", 0):
            try:
                boxes[image_key[ann["image_id"]]].append((names[ann["category_id"]],
                                                          xywh_box(ann["bbox"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"ground truth {path}: annotation {ann.get('id')} is not "
                                 f"usable ({type(exc).__name__}: {exc})") from None
    return boxes


def detections_by_frame(frames: list[dict], by_index: bool = False) -> dict:
    return {frame_key(f, i, by_index): [(d["class_id"], d["score"], entry_box(d))
                                        for d in f["detections"]]
            for i, f in enumerate(frames) if f["processed"]}


def run_compare(args) -> tuple[int, str, dict]:
    """(exit code, printed text, data for the report)."""
    golden_doc, run_doc = load_run(args.golden, "golden"), load_run(args.run, "run")
    by_index = stamps_repeat(golden_doc, run_doc)
    out, failures, results = [], [], []
    out.append(f"compare: golden {args.golden} vs run {args.run} (IoU >= {args.iou}, "
               f"|score diff| <= {args.score_tolerance})")
    if by_index:
        out.append("note: header stamps repeat; frames are matched by position (frame index)")
    for topic in golden_doc:
        if topic not in run_doc:
            failures.append(f"{topic}: not in the run (run has {sorted(run_doc)})")
            continue
        r = compare_topic(topic, golden_doc[topic], run_doc[topic], args.iou,
                          args.score_tolerance, by_index)
        results.append(r)
        out.append(f"\n{topic}: precision {r.precision:.4f} recall {r.recall:.4f} "
                   f"({r.tp} matched; {r.golden_dets} golden, {r.run_dets} run detections); "
                   f"frames: {r.golden_frames} golden, {r.run_frames} run, "
                   f"{len(r.missing)} missing, {len(r.extra)} extra")
        if r.missing:
            out.append(f"  missing frames ({'index' if by_index else 'stamp_ns'}): "
                       f"{r.missing[:10]}"
                       + (" ..." if len(r.missing) > 10 else ""))
        worst = sorted((f for f in r.frames if f[2]), key=lambda f: (-f[2], f[1]))[:args.worst]
        if worst:
            out.append(f"  worst frames ({len([f for f in r.frames if f[2]])} differ):")
        for stamp, index, errors, lines, _, _ in worst:
            out.append(f"  frame {index} stamp_ns {golden_doc[topic][index]['stamp_ns']}: "
                       f"{errors} difference(s)")
            out.extend(f"    {line}" for line in lines)
        if r.recall < args.min_recall:
            failures.append(f"{topic}: recall {r.recall:.4f} < {args.min_recall}")
        if r.precision < args.min_precision:
            failures.append(f"{topic}: precision {r.precision:.4f} < {args.min_precision}")
        if len(r.missing) > args.max_missing_frames:
            failures.append(f"{topic}: {len(r.missing)} missing frame(s) > "
                            f"{args.max_missing_frames}")
        if 0 <= args.max_extra_frames < len(r.extra):
            failures.append(f"{topic}: {len(r.extra)} extra frame(s) > {args.max_extra_frames}")
    timing = {"golden": load_timing(args.golden), "run": load_timing(args.run)}
    out.append("\nlatency (publish -> answer):")
    for which in ("golden", "run"):
        for topic, values in timing[which].items():
            out.append(f"  {which} {topic}: {latency_line(values)}")
    maps = {}
    if args.ground_truth:
        out.append(f"\nground truth {args.ground_truth}:")
        for which, doc in (("golden", golden_doc), ("run", run_doc)):
            frames = next(iter(doc.values()))
            gt = ground_truth_boxes(args.ground_truth, frames, by_index)
            maps[which] = coco_map(gt, detections_by_frame(frames, by_index))
            out.append(f"  {which}: mAP@0.5 {maps[which]['map50']:.4f}, mAP@0.5:0.95 "
                       f"{maps[which]['map50_95']:.4f} ({len(gt)} images, "
                       f"{sum(len(v) for v in gt.values())} boxes)")
    out.append("\nresult: " + ("FAIL\n  " + "\n  ".join(failures) if failures else "PASS"))
    data = {"results": results, "timing": timing, "maps": maps, "failures": failures,
            "golden_doc": golden_doc, "run_doc": run_doc}
    return (EXIT_REGRESSION if failures else EXIT_OK), "\n".join(out), data


def write_report(directory: Path, text: str, data: dict, args) -> None:
    """report.md plus detections_per_frame.png, scores.png, latency.png in ``directory``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    directory.mkdir(parents=True, exist_ok=True)
    topics = list(data["golden_doc"])
    fig, axes = plt.subplots(len(topics), 1, figsize=(9, 3 * len(topics)), squeeze=False)
    for ax, topic in zip(axes[:, 0], topics):
        for which, style in (("golden", "-"), ("run", "--")):
            frames = data[f"{which}_doc"].get(topic, [])
            ax.plot([len(f["detections"]) if f["processed"] else np.nan for f in frames],
                    style, label=which)
        ax.set_title(f"detections per frame: {topic}")
        ax.set_xlabel("frame")
        ax.legend()
    fig.tight_layout()
    fig.savefig(directory / "detections_per_frame.png", dpi=80)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = np.linspace(0, 1, 21)
    for which in ("golden", "run"):
        scores = [d["score"] for f in data[f"{which}_doc"][topics[0]] for d in f["detections"]]
        ax.hist(scores, bins=bins, alpha=0.5, label=f"{which} ({len(scores)})")
    ax.set_title(f"detection scores: {topics[0]}")
    ax.set_xlabel("score")
    ax.legend()
    fig.tight_layout()
    fig.savefig(directory / "scores.png", dpi=80)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for which in ("golden", "run"):
        for topic, values in data["timing"][which].items():
            if values:
                ax.hist(values, bins=30, alpha=0.5, label=f"{which} {topic}")
    ax.set_title("latency, publish -> answer (ms)")
    ax.set_xlabel("ms")
    if ax.has_data():
        ax.legend()
    fig.tight_layout()
    fig.savefig(directory / "latency.png", dpi=80)
    plt.close(fig)
    lines = ["# Replay comparison", "", f"- golden: `{args.golden}`", f"- run: `{args.run}`",
             f"- match: same class, IoU >= {args.iou}, |score difference| <= "
             f"{args.score_tolerance}", "", "| topic | precision | recall | matched | golden "
             "dets | run dets | missing frames | extra frames |", "|---|---|---|---|---|---|---|---|"]
    for r in data["results"]:
        lines.append(f"| `{r.topic}` | {r.precision:.4f} | {r.recall:.4f} | {r.tp} | "
                     f"{r.golden_dets} | {r.run_dets} | {len(r.missing)} | {len(r.extra)} |")
    if data["maps"]:
        lines += ["", "| detections | mAP@0.5 | mAP@0.5:0.95 |", "|---|---|---|"]
        lines += [f"| {w} | {m['map50']:.4f} | {m['map50_95']:.4f} |"
                  for w, m in data["maps"].items()]
    lines += ["", "![detections per frame](detections_per_frame.png)", "",
              "![scores](scores.png)", "", "![latency](latency.png)", "",
              "## Output", "", "```", text, "```", ""]
    (directory / "report.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        code, text, data = run_compare(args)
    except InputError as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return EXIT_INPUT
    print(text)
    if args.report:
        write_report(args.report, text, data, args)
        print(f"report: {args.report / 'report.md'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
