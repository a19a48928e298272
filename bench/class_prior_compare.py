#!/usr/bin/env python3
"""How the class prior of a trained model changes its decisions, without retraining.

The trainer weights each class by w_c = sqrt(n / (k n_c)) and then shifts the head's bias: by -log w
("data": the training data's class shares), or by +log w ("balanced": every class equally likely).
Multiplying the probabilities by w_c^a and taking the argmax moves a model trained with one shift to
another: a = 0 keeps the model's own, a = 1 undoes a "data" shift, a = 2 turns "data" into "balanced"
(for a "balanced" model, a = -2 gives "data"). Prints accuracy, balanced accuracy, per-class recall,
alarm recall and false alarms for each, over all images and per data root.

usage: bench/class_prior_compare.py RUN_DIR EVAL_JSON... [--exponents 0,1,2]
  EVAL_JSON: output of `firesight eval --json --model RUN_DIR --split val|test` (it lists every image's
  probabilities). RUN_DIR gives the training class counts (metrics.json -> split_sizes is not enough,
  so splits.json is read).
"""
import json, math, sys

def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    exps = [0.0, 1.0, 2.0]
    for i, a in enumerate(sys.argv):
        if a == "--exponents": exps = [float(x) for x in sys.argv[i + 1].split(",")]
    if len(args) < 2: sys.exit(__doc__)
    run, files = args[0], [a for a in args[1:] if a != ",".join(str(e) for e in exps)]
    splits = json.load(open(f"{run}/splits.json"))
    classes = splits["classes"]
    counts = [0] * len(classes)
    for s in splits["train"]: counts[s["label"]] += 1
    total = sum(counts)
    w = [math.sqrt(total / (len(classes) * c)) for c in counts]
    alarm = [c in ("fire", "smoke") for c in classes]
    roots = [r.rstrip("/").split("/")[-1] for r in splits.get("roots", [splits.get("root", "")])]
    for f in files:
        preds = json.load(open(f))["predictions"]
        for a in exps:
            for subset in ["all"] + roots:
                rows = []
                for p in preds:
                    if subset != "all" and f"/{subset}/" not in p["file"]: continue
                    q = [p["probabilities"][c] * w[c] ** a for c in range(len(classes))]
                    rows.append((classes.index(p["truth"]), max(range(len(classes)), key=lambda c: q[c])))
                if rows: print(f"{f}  a={a:+.0f}  {subset:<16} {len(rows):4d} images  {summary(rows, classes, alarm)}")

def summary(rows, classes, alarm):
    k = len(classes)
    conf = [[0] * k for _ in range(k)]
    for t, p in rows: conf[t][p] += 1
    rec = [conf[c][c] / sum(conf[c]) if sum(conf[c]) else None for c in range(k)]
    present = [r for r in rec if r is not None]
    acc = sum(conf[c][c] for c in range(k)) / len(rows)
    al = [(t, p) for t, p in rows if alarm[t]]
    ot = [(t, p) for t, p in rows if not alarm[t]]
    caught = sum(1 for t, p in al if alarm[p]) / len(al) if al else float("nan")
    fa = sum(1 for t, p in ot if alarm[p]) / len(ot) if ot else float("nan")
    recs = " ".join(f"{classes[c]} {100 * r:5.1f}" for c, r in enumerate(rec) if r is not None)
    return f"accuracy {100 * acc:5.1f}  balanced {100 * sum(present) / len(present):5.1f}  recall {recs}  alarm {100 * caught:5.1f}  false alarms {100 * fa:4.1f}"

main()
