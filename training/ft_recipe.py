"""Fine-tune recipe check: one fixed label set, one finetune.py run, and the weights blended
back towards the base at several shares (finetune.blend), each scored on the family's test
frames and on own validation (val_dr, 80 frames; IoU and entropy AUROC): how much target gain each share keeps and
how much own-validation IoU it gives up. The records behind finetune.py's --blend default.

Usage: python ft_recipe.py --family ho_light --name d200 --alphas 1,0.7,0.5 -- [finetune.py args]
       python ft_recipe.py --family ho_light --name base          # the base's two scores
Label set: K frames of the al-study pool (scenegen seed 8), drawn as al_study.py's `random`
arm draws them for that seed. Appends one JSON line per share to --out/results.jsonl.
"""
import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import al_study as A  # noqa: E402
import labels as L  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", default="ho_light")
    ap.add_argument("--k", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", required=True)
    ap.add_argument("--alphas", default="1", help="shares of the fine-tuned weights to score")
    ap.add_argument("--base", default=str(ROOT / "models" / "pipeline_seg_unet.onnx"))
    ap.add_argument("--data", default=str(HERE / "data"))
    ap.add_argument("--out", default="/tmp/ft_recipe")
    ap.add_argument("ftargs", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    import torch
    import export as E
    import finetune as F
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    lab = out / f"labels_{a.family}_k{a.k}_s{a.seed}"
    if not lab.exists():
        _, rgb_of, gt_of = A.render_pool(a.family, 120, 2)
        L.write_label_dir(lab, [(st, rgb_of[st], gt_of[st]) for st in A.random_order(gt_of, a.seed)[: a.k]])
    test = A.frames_of(Path(a.data) / a.family)
    val = A.frames_of(Path(a.data) / "val_dr")[:80]

    def score(model, tag):
        t, v = A.evaluate(model, test), A.evaluate(model, val)
        rec = {"name": a.name, "tag": tag, "family": a.family, "k": a.k, "seed": a.seed, "args": a.ftargs,
               "target": round(t["pooled_iou"], 4), "val": round(v["pooled_iou"], 4),
               "auroc_t": round(t["auroc_entropy"], 4), "auroc_v": round(v["auroc_entropy"], 4),
               "val_closeup": v["closeup_iou"] and round(v["closeup_iou"], 4)}
        print(json.dumps(rec), flush=True)
        with open(out / "results.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")

    if a.name == "base":
        return score(a.base, "base")
    model = out / f"{a.name}_{a.family}_s{a.seed}.onnx"
    t0 = time.time()
    # --blend 1: the shares below are taken of the weights as trained (finetune.py writes a 0.7 blend by
    # default; before this was passed, the rows' "1" was that blend and "0.7" 0.49 of the trained weights).
    rc = F.main(["--labels", str(lab), "--out", str(model), "--base", a.base, "--holdout", "0", "--seed",
                 str(a.seed), "--threads", "2", "--blend", "1"] + [x for x in a.ftargs if x != "--"])
    print(f"fine-tune {time.time() - t0:.0f} s")
    if rc:
        sys.exit(rc)
    base_sd = F.base_weights(Path(a.base))[0].state_dict()
    ft = torch.load(model.with_suffix(".pt"), map_location="cpu")
    for al in (float(x) for x in a.alphas.split(",")):
        if al == 1:
            score(model, "a1")
            continue
        p = out / f"blend_{a.name}_{a.family}_s{a.seed}_{al}.pt"  # per seed: runs in parallel share --out
        torch.save({"state_dict": F.blend(ft["state_dict"], base_sd, al), "config": ft["config"],
                    "temperature": ft["temperature"]}, p)
        with contextlib.redirect_stdout(io.StringIO()):
            E.export(str(p), str(p.with_suffix(".onnx")))
        score(p.with_suffix(".onnx"), f"a{al}")


if __name__ == "__main__":
    main()
