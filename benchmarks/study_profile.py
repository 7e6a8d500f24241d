"""Where a study's time goes: one study run in this process (sequential executor, one thread,
a cold cache), its wall time split into the steps xner takes.

    python benchmarks/study_profile.py --config configs/quick.yaml

Each step is a function of xner timed on entry and exit; a second goes to the innermost step
running then (the scoring inside an evaluation is scoring, not prediction), so the rows add
up to the wall time: training updates (forward, backward, optimizer), the dev F1 of early
stopping, frozen bottom-layer features, teacher soft labels, test-set predictions, scoring
(entities, bootstrap CIs), perturbation, reading data, tokenizing, the report, and the rest
(model loading and saving, the store, Python). One thread: what one process-pool worker
spends; a pool of N workers divides the wall time, not the split.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

# (step, module, attribute path): the function whose calls are the step.
STEPS = (
    ("training updates", "xner.models.tagger", "Tagger.fit"),
    ("dev F1 (early stopping)", "xner.models.tagger", "Tagger.evaluate"),
    ("test-set predictions", "xner.evaluation", "evaluate_tagger"),
    ("scoring (entities, bootstrap)", "xner.evaluation", "GoldSide.score"),
    ("teacher soft labels", "xner.distillation.student", "teacher_distributions"),
    ("frozen bottom features", "xner.models.tagger", "frozen_features"),
    ("perturbation", "xner.perturb", "perturb_corpus"),
    ("perturbation", "xner.perturb", "build_resources"),
    ("reading data", "xner.data.datasets", "read_split"),
    ("tokenizing", "xner.models.tagger", "encode_corpus"),
    ("report", "xner.report", "write_report"),
)


# A step called inside the first step is charged to it: an evaluation predicts its test sets
# through the soft-label code (an ensemble of one model, cached per sentence), and those seconds
# are test-set predictions, not teacher soft labels.
CHARGED_TO_CALLER = {("test-set predictions", "teacher soft labels")}


class StepClock:
    """Wall time per step, each interval charged to the innermost step running."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.stack: list[str] = []
        self.last = time.perf_counter()

    def _charge(self) -> None:
        now = time.perf_counter()
        self.totals[self.stack[-1] if self.stack else "rest"] += now - self.last
        self.last = now

    def wrap(self, step: str, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            self._charge()
            caller = self.stack[-1] if self.stack else None
            self.stack.append(caller if (caller, step) in CHARGED_TO_CALLER else step)
            try:
                return function(*args, **kwargs)
            finally:
                self._charge()
                self.stack.pop()

        return timed

    def install(self) -> None:
        for step, module_name, attribute in STEPS:
            owner = importlib.import_module(module_name)
            *path, name = attribute.split(".")
            for part in path:
                owner = getattr(owner, part)
            setattr(owner, name, self.wrap(step, getattr(owner, name)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/quick.yaml")
    parser.add_argument("--data-dir", default=os.environ.get("XNER_DATA_DIR", "../shared/data"))
    parser.add_argument("--seeds", help="comma-separated seeds instead of the config's (later seeds reuse caches)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import torch

    torch.set_num_threads(1)
    os.environ["XNER_DATA_DIR"] = args.data_dir
    from study_speed import load_config  # the same study, seeds and output folder as the speed benchmark's

    from xner.models import embedded_model_dir
    from xner.study import run_study

    clock = StepClock()
    clock.install()
    with tempfile.TemporaryDirectory() as work:
        os.environ["XNER_CACHE"] = str(Path(work) / "cache")
        embedded_model_dir()  # the one-off conversion of the embedded encoder is not the study's
        config = load_config(args, Path(work))
        started = clock.last = time.perf_counter()
        run = run_study(config, executor="sequential")
        clock._charge()
        wall = time.perf_counter() - started
    print(f"{args.config}: {run.counts.get('done', 0)} runs, {wall:.0f} s wall in one process and thread")
    print("| step | seconds | share |\n|---|---|---|")
    for name, seconds in sorted(clock.totals.items(), key=lambda item: -item[1]):
        print(f"| {name} | {seconds:.1f} | {100 * seconds / wall:.1f}% |")


if __name__ == "__main__":
    main()
