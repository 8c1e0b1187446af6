"""Training time of the heart DynUNet pair from its logs (runs/heart_dynunet_pair.s<seed>.log): per member the
epochs done, the logged total, and the median epoch times the epochs. The logged total of member 0 is not its
training time: some of its epochs ran beside other jobs or while it was paused (README.md lists them), so the
median epoch, most of which ran alone, gives the time a member takes on this CPU with nothing else running.
Usage: python docs/results/heart_dynunet_pair/times.py [log ...]
"""

import re
import statistics
import sys
from pathlib import Path

EPOCH = re.compile(r"Epoch\[(\d+)\] Complete\. Time taken: (\d+):(\d+):([\d.]+)")
LOGS = [Path(f"runs/heart_dynunet_pair.s{seed}.log") for seed in (0, 1)]


def epoch_seconds(log: Path) -> dict:
    """{epoch: seconds} of the last completion logged for each epoch (a resumed run logs an epoch again)."""
    seconds = {}
    for match in EPOCH.finditer(log.read_text()):
        epoch, hours, minutes, secs = match.groups()
        seconds[int(epoch)] = int(hours) * 3600 + int(minutes) * 60 + float(secs)
    return seconds


def main(logs: list) -> None:
    print("| member log | epochs done | logged seconds | median epoch (s) | median x epochs (s) |")
    print("|---|---|---|---|---|")
    for log in map(Path, logs):
        if not log.is_file():
            print(f"| {log} | not started | | | |")
            continue
        seconds = epoch_seconds(log)
        median = statistics.median(seconds.values()) if seconds else 0.0
        print(f"| {log} | {len(seconds)} | {sum(seconds.values()):.0f} | {median:.0f} | {median * len(seconds):.0f} |")


if __name__ == "__main__":
    main(sys.argv[1:] or LOGS)
