#!/usr/bin/env python3
"""Fuzz target `labels`: the fine-tuning loop's label reader, training/labels.py `check_label_dirs`.

    python3 fuzz/fuzz_labels.py [libFuzzer flags] CORPUS_DIR...  # fuzz (needs atheris)
    python3 fuzz/fuzz_labels.py --replay FILE...                  # run inputs once (no atheris)

An input is `[manifest length u16][frame length u16][manifest.csv][1000.png][1000_mask.png]`
(little-endian lengths; what is left after the frame is the mask; no mask bytes: no mask file).
`check_label_dirs` must return a LabelSet whose masks match their frames, or raise LabelError
naming the bad files; any other exception is a finding. atheris instruments labels.py only
(OpenCV and numpy are native code without coverage feedback).
"""
from __future__ import annotations

import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "training"))

# One scratch directory per process, as fuzz/harness.rs keeps them: libFuzzer ends the process
# with exit(), past any cleanup, so directories of processes that are gone are removed here.
_ROOT = Path(tempfile.gettempdir()) / "pipeline_seg_fuzz"
for _old in _ROOT.glob("*-*"):
    if _old.name.split("-")[0].isdigit() and not Path(f"/proc/{_old.name.split('-')[0]}").exists():
        shutil.rmtree(_old, ignore_errors=True)
_SCRATCH = _ROOT / f"{os.getpid()}-py"
REPLAY_PEAK_MB = 512
labels = None  # training/labels.py, imported by main (instrumented when fuzzing)


def one_input(data: bytes) -> None:
    if len(data) < 4:
        return
    n_manifest, n_frame = struct.unpack_from("<HH", data)
    rest = data[4:]
    manifest, rest = rest[:n_manifest], rest[n_manifest:]
    frame, mask = rest[:n_frame], rest[n_frame:]
    d = _SCRATCH
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    (d / labels.MANIFEST).write_bytes(manifest)
    (d / "1000.png").write_bytes(frame)
    if mask:
        (d / f"1000{labels.MASK_SUFFIX}").write_bytes(mask)
    try:
        got = labels.check_label_dirs([d])
    except labels.LabelError as e:
        assert e.problems and all(isinstance(p, str) and isinstance(w, str) for p, w in e.problems), e.problems
        return
    for f in got.frames:
        assert f.rgb.dtype.name == "uint8" and f.rgb.ndim == 3 and f.rgb.shape[2] == 3, f.rgb.shape
        assert f.mask.dtype == bool and f.mask.shape == f.rgb.shape[:2], (f.mask.shape, f.rgb.shape)


def main() -> None:
    global labels
    if sys.argv[1:2] == ["--replay"]:
        import resource
        import labels
        try:
            for name in sys.argv[2:]:
                one_input(Path(name).read_bytes())
                # The process's high-water mark: an input must not cost what the fuzzer's
                # -rss_limit_mb would flag (cv2 and numpy alone take ~45 MB).
                peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
                assert peak_mb < REPLAY_PEAK_MB, f"{name}: peak RSS {peak_mb} MB"
                print(f"ok {name} (peak RSS {peak_mb} MB)")
        finally:
            shutil.rmtree(_SCRATCH, ignore_errors=True)
        return
    import atheris
    with atheris.instrument_imports(include=["labels"]):
        import labels
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
