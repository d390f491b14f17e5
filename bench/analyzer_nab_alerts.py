#!/usr/bin/env python3
"""False alerts per series-week on nab-dev's normal stretches, at the decision threshold.

Reads the detector output that nab_score.py --save-results wrote (NAB results layout) and the
labels; an alert is an onset, a row with anomaly_score >= THRESHOLD whose previous row is below
it. Normal stretches are the rows outside every labelled window and outside the warm-up
(warming_up = 1). Prints alerts, normal weeks and the rate, per category and in total.
  analyzer_nab_alerts.py RESULTS_DIR LABELS [THRESHOLD]
"""
import glob
import json
import os
import sys

import pandas as pd

results, labels_path = sys.argv[1], sys.argv[2]
threshold = float(sys.argv[3]) if len(sys.argv) > 3 else 0.5
labels = json.load(open(labels_path))
rows = {}
for rel, windows in sorted(labels.items()):
    cat, name = rel.split("/", 1)
    found = glob.glob(os.path.join(results, "*", cat, "*_" + name))
    if not found:
        continue
    df = pd.read_csv(found[0])
    t = pd.to_datetime(df["timestamp"])
    inside = pd.Series(False, index=df.index)
    for a, b in windows:
        inside |= (t >= pd.Timestamp(a)) & (t <= pd.Timestamp(b))
    flagged = df["anomaly_score"] >= threshold
    onset = flagged & ~flagged.shift(1, fill_value=False)
    normal = ~inside
    step = t.diff().median().total_seconds()
    weeks = normal.sum() * step / (7 * 86400)
    r = rows.setdefault(cat, [0, 0.0, 0])
    r[0] += int((onset & normal).sum())
    r[1] += weeks
    r[2] += 1
print("| category | series | normal series-weeks | false alerts | per series-week |")
print("|---|---|---|---|---|")
total = [0, 0.0, 0]
for cat, (alerts, weeks, n) in sorted(rows.items()):
    print("| %s | %d | %.1f | %d | %.2f |" % (cat, n, weeks, alerts, alerts / weeks))
    total = [total[0] + alerts, total[1] + weeks, total[2] + n]
print("| all | %d | %.1f | %d | %.2f |" % (total[2], total[1], total[0], total[0] / total[1]))
