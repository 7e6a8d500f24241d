"""Studies: a YAML config expanded into content-hashed runs, executed with resume.

``load_study`` validates a config, ``Study.expand`` plans its runs, ``run_study`` runs
what is missing (sequentially, in a process pool or on Ray) and ``ResultStore`` holds the
outcomes and gives the tidy results table. Run kinds are registered with
``register_run_kind``.
"""

from xner.study.execute import EXECUTORS, StudyRun, make_executor, run_study
from xner.study.runs import RunContext, RunRegistry, RunSpec, register_run_kind
from xner.study.spec import Study, load_study, parse_study
from xner.study.store import ResultStore

__all__ = [
    "EXECUTORS",
    "ResultStore",
    "RunContext",
    "RunRegistry",
    "RunSpec",
    "Study",
    "StudyRun",
    "load_study",
    "make_executor",
    "parse_study",
    "register_run_kind",
    "run_study",
]
