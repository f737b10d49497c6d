"""Where a live predictor's time goes under load: py-spy samples it while `hey` (or the gRPC driver) loads it.

    make profile-serving          # or: .venv/serving/bin/python benchmarks/serving/profile_server.py
                                  #     [--stack shipyard|ceiling-front-door|shipyard-grpc|...] [--rows 1]

Serves one stack of the serving benchmark (run.py: same model, arguments and settings), loads
it at `-c 8`, and records it with py-spy (the tools venv) meanwhile. Writes the collapsed
stacks (`profile-<stack>.txt`, the input of any flame graph tool) next to the benchmark's
files and prints the functions with the most samples: on their own, and (kserve's and
Shipyard's) with what they call. The event loop's `select` is time the server waited for
requests (py-spy samples it as active).
Run the same for `ceiling-front-door`: the frames the two profiles do not share are what
Shipyard's model path costs.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import threading
from pathlib import Path

from run import CASES, REPO, load, request_bodies, serving, stacks, train

PY_SPY = REPO / ".venv/tools/bin/py-spy"
# "function (path/to/file.py:line)": shortened to the path under site-packages or the package.
FRAME = re.compile(r" \(.*?/(?:site-packages|python3\.\d+|images/serving)/")
OWN_CODE = re.compile(r"\((?:kserve|shipyard_serving)/")


def top(raw: Path, count: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    within: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = [FRAME.sub(" (", frame) for frame in stack.split(";")]
        total += int(samples)
        own[frames[-1]] += int(samples)
        for frame in set(frames):
            if OWN_CODE.search(frame):
                within[frame] += int(samples)
    titles = ("own samples", "samples including callees, kserve's and Shipyard's functions")
    for title, counter in zip(titles, (own, within), strict=True):
        print(f"\n{title} ({total} samples):")
        for frame, samples in counter.most_common(count):
            print(f"  {samples / total:6.1%}  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="shipyard", choices=[s.key for s in stacks(Path(), 1)])
    parser.add_argument("--rows", type=int, default=1, choices=sorted({c.rows for c in CASES}))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--workdir", type=Path, default=REPO / ".shipyard/bench/serving")
    args = parser.parse_args()
    if not PY_SPY.exists():
        sys.exit(f"{PY_SPY} is missing: make .venv/tools/.done (py-spy is in tools/requirements.in)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    model_dir = train(args.workdir)
    bodies = request_bodies(model_dir, args.workdir)
    [stack] = [s for s in stacks(model_dir, 1) if s.key == args.stack]
    case = next(c for c in CASES if c.rows == args.rows and c.concurrency == 8)
    raw = args.workdir / f"profile-{stack.key}.txt"
    with serving(stack, args.workdir) as server:
        load(server, bodies, case, 2)  # warm-up
        loader = threading.Thread(target=load, args=(server, bodies, case, args.seconds + 1))
        loader.start()
        record = [str(PY_SPY), "record", "--pid", str(server.group), "--rate", "200", "--nonblocking"]
        record += ["--duration", str(args.seconds), "--format", "raw", "--output", str(raw)]
        subprocess.run(record, check=True, capture_output=True)
        loader.join()
    print(f"{stack.name}, {case}: collapsed stacks in {raw}")
    top(raw, args.top)


if __name__ == "__main__":
    main()
