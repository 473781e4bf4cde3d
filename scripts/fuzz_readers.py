"""A long generated campaign against the export readers; prints what escaped, how slow and how big it got.

    python scripts/fuzz_readers.py [--cases 10000] [--recordings 300] [--seed 0]

Runs the strategies of tests/test_tables_generated.py (the CI suite runs them a few hundred times)
many more times: valid tables read back exactly, damaged tables (truncated, bytes flipped, quotes,
NULs, huge numbers, doubled header names inserted) and number text in integer columns go through
``tables.read_table``; then damaged CSVs inside a synthetic recording folder go through
``Recording.open``. A case passes when it reads or raises DensePoseGazeError, within a few seconds,
and loses no row without a warning. The table counts cases, exception types, the slowest case, the
largest Python allocation of one case (tracemalloc peak) and rows lost; the exit status is 1 when
anything other than DensePoseGazeError escaped or a row was lost silently.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_tables_generated as generated  # the strategies live with the CI suite

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.tables import WORLD_TIMESTAMPS

SLOW_SECONDS = 3.0


@dataclass
class Tally:
    """What one phase of the campaign saw."""

    cases: int = 0
    outcomes: collections.Counter = field(default_factory=collections.Counter)
    max_seconds: float = 0.0
    max_mb: float = 0.0
    rows_lost: int = 0
    slow: int = 0
    examples: dict[str, str] = field(default_factory=dict)  # first case of each escaped exception type

    def add(self, outcome: str, seconds: float, peak_bytes: int, lost: int, example: str = "") -> None:
        self.cases += 1
        self.outcomes[outcome] += 1
        self.max_seconds = max(self.max_seconds, seconds)
        self.max_mb = max(self.max_mb, peak_bytes / 2**20)
        self.rows_lost += lost
        self.slow += seconds > SLOW_SECONDS
        if outcome not in ("read", "DensePoseGazeError") and outcome not in self.examples:
            self.examples[outcome] = example[:300]
        if self.cases % 1000 == 0:  # a long campaign shows where it stands
            print(f"  ... {self.cases} cases: {dict(self.outcomes)}, max {self.max_seconds:.2f} s, "
                  f"{self.max_mb:.1f} MB, {self.rows_lost} rows lost", file=sys.stderr, flush=True)


def measured(func: Callable[[], object]) -> tuple[object, float, int]:
    """``func()``'s result (or the exception it raised), its seconds and its peak traced allocation."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result: object = func()
    except Exception as exc:  # the campaign counts every kind
        result = exc
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak


def kind(result: object) -> str:
    if isinstance(result, DensePoseGazeError):
        return "DensePoseGazeError"
    if isinstance(result, BaseException):
        return type(result).__name__
    return "read"


def run(strategy, cases: int, seed_value: int, check: Callable) -> None:
    """Run ``check`` on ``cases`` examples of ``strategy``; check records, it never fails the run."""

    @seed(seed_value)
    @settings(max_examples=cases, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), phases=["generate"])
    @given(strategy)
    def campaign(example):
        check(example)

    campaign()


def table_phases(folder: Path, cases: int, seed_value: int) -> dict[str, Tally]:
    tallies = {name: Tally() for name in ("valid tables", "damaged tables", "integer cells")}

    def valid(case):
        result, seconds, peak = measured(lambda: generated._read(case.data, case.spec, folder))
        lost = case.n_rows - len(result.table) if kind(result) == "read" else 0
        outcome = kind(result)
        if outcome == "read":
            try:
                generated.check_exact_round_trip(case, folder)
            except AssertionError as exc:
                outcome = "inexact"
                result = exc
        tallies["valid tables"].add(outcome, seconds, peak, max(lost, 0), repr(case.data[:200]))

    def damaged(mutated):
        case, data = mutated
        result, seconds, peak = measured(lambda: generated._read(data, case.spec, folder))
        lost = 0
        if kind(result) == "read":
            lost = max(generated.records_in(data) - len(result.table) - generated.rows_left_out(result.warnings), 0)
        tallies["damaged tables"].add(kind(result), seconds, peak, lost, f"{result!r} on {data[:200]!r}")

    def integer_cell(text):
        data = f"timestamp [ns]\n{text}\n".encode("utf-8", "surrogatepass")
        result, seconds, peak = measured(lambda: generated._read(data, WORLD_TIMESTAMPS, folder))
        tallies["integer cells"].add(kind(result), seconds, peak, 0, f"{result!r} on {text[:100]!r}")

    share = max(cases // 10, 1)  # most of the campaign on damaged files, where faults are
    run(generated.valid_tables(), share * 2, seed_value, valid)
    run(generated.mutations(), cases - share * 3, seed_value + 1, damaged)
    run(generated.NUMBER_TEXT, share, seed_value + 2, integer_cell)
    return tallies


def recording_phase(folder: Path, cases: int, seed_value: int) -> Tally:
    from napari_densepose_gaze.recording import Recording
    from napari_densepose_gaze.synthetic.export import write_recording

    tally = Tally()
    pristine = write_recording(folder / "pristine", seconds=2.0, size=(64, 48), seed=seed_value)
    names = sorted(p.name for p in pristine.glob("*.csv"))
    work = folder / "work"

    def damaged(choice):
        name, mutate = choice
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(pristine, work)
        target = work / name
        target.write_bytes(mutate(target.read_bytes()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result, seconds, peak = measured(lambda: Recording.open(work))
        tally.add(kind(result), seconds, peak, 0, f"{result!r} on {name}")

    @st.composite
    def file_mutations(draw):
        name = draw(st.sampled_from(names))
        op = st.tuples(st.sampled_from(["truncate", "insert", "flip"]), st.integers(0, 10**6),
                       st.sampled_from(generated.SNIPPETS), st.integers(0, 255))
        ops = draw(st.lists(op, min_size=1, max_size=3))

        def mutate(data: bytes) -> bytes:
            for op, at, snippet, byte in ops:
                at %= len(data) + 1
                if op == "truncate":
                    data = data[:at]
                elif op == "insert":
                    data = data[:at] + snippet + data[at:]
                elif data:
                    at = min(at, len(data) - 1)
                    data = data[:at] + bytes([byte]) + data[at + 1:]
            return data

        return name, mutate

    run(file_mutations(), cases, seed_value + 3, damaged)
    return tally


def report(tallies: dict[str, Tally]) -> bool:
    print(f"{'phase':<16} {'cases':>6}  {'outcomes':<52} {'max s':>6} {'max MB':>7} {'slow':>5} {'rows lost':>9}")
    clean = True
    for name, t in tallies.items():
        outcomes = ", ".join(f"{k} {v}" for k, v in t.outcomes.most_common())
        print(f"{name:<16} {t.cases:>6}  {outcomes:<52} {t.max_seconds:>6.2f} {t.max_mb:>7.1f} {t.slow:>5} "
              f"{t.rows_lost:>9}")
        clean &= not t.examples and t.rows_lost == 0 and t.slow == 0
        for outcome, example in t.examples.items():
            print(f"    first {outcome}: {example}")
    total = sum(t.cases for t in tallies.values())
    print(f"{'all':<16} {total:>6}  {'clean' if clean else 'NOT CLEAN'}")
    return clean


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="generated cases for tables.read_table")
    parser.add_argument("--recordings", type=int, default=300, help="damaged recording folders for Recording.open")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        started = time.perf_counter()
        tallies = table_phases(folder, args.cases, args.seed)
        if args.recordings:
            tallies["Recording.open"] = recording_phase(folder, args.recordings, args.seed)
        clean = report(tallies)
        print(f"{time.perf_counter() - started:.0f} s in all")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
