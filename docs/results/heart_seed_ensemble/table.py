"""Issue 31 (d) on heart: a 2-member ensemble paired with each member and with their mean, per case.

Folders eval_*: validation cases; test_*: test cases. Usage: python table.py <runs/heart_ens> <eval|test> ens s0 s1
(METRIC=hd95 in the environment: HD95 in mm instead of Dice in %)
"""
import os
import sys
from freq_transforms.metrics import read_metric_csv, paired_difference_ci, bootstrap_ci
R, part = sys.argv[1], sys.argv[2]
names = sys.argv[3:]
res = {k: {} for k in names}
for f in range(4):
    for k in names:
        cols = read_metric_csv(f"{R}/fold{f}/{part}_{k}/test_{os.environ.get('METRIC', 'mean_dice')}_raw.csv")
        res[k].update(dict(zip(cols["filename"], cols["mean"])))
cases = sorted(res[names[0]])
scale = 1 if os.environ.get("METRIC") == "hd95" else 100
v = {k: [scale * float(res[k][c]) for c in cases] for k in names}
for k in names:
    print(part, k, len(v[k]), bootstrap_ci(v[k]).format(1))
for k in names[1:]:
    print(part, "ens -", k, paired_difference_ci(v["ens"], v[k]).format(1))
if len(names) == 3:
    mean_member = [(a + b) / 2 for a, b in zip(v[names[1]], v[names[2]])]
    print(part, "ens - mean of members", paired_difference_ci(v["ens"], mean_member).format(1))
