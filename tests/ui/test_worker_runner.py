"""The widgets' shared worker runner: napari progress bars that move, errors shown, one task at a time."""

from __future__ import annotations

import pytest
from napari.qt.threading import thread_worker

from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.ui.worker_runner import WorkerRunner


@pytest.fixture
def runner(qapp):
    shown: list[str] = []
    runner = WorkerRunner(show_status=shown.append, busy_changed=lambda: None, failure="Task failed")
    runner.shown = shown
    yield runner
    runner.close_bar()


def bar_values(runner: WorkerRunner) -> list[int]:
    """The values napari's bar widget is told (it follows the bar's "value" event)."""
    values: list[int] = []
    runner.bar.events.value.connect(lambda event: values.append(event.value))
    return values


def test_progress_moves_the_bar_and_tells_its_widget(runner):
    runner.open_bar("Frames", 10)
    values = bar_values(runner)
    runner.progress(3, 10)
    runner.progress(7, 10)
    assert runner.bar.n == 7 and values == [3, 7]
    runner.progress(5, 20)  # a new total, and a bar may go back
    assert (runner.bar.n, runner.bar.total) == (5, 20) and values[-1] == 5


def test_progress_reported_while_the_bar_redraws_shows_the_latest(runner):
    """napari's bar widget processes Qt events on each change, delivering the next queued calls inside it."""
    runner.open_bar("Bytes", 100)
    values = bar_values(runner)
    nested = iter([40, 90])

    def redraw(event):
        for done in nested:  # two calls arrive while the bar redraws for the first
            runner.progress(done, 100)

    runner.bar.events.value.connect(redraw)
    runner.progress(10, 100)
    assert values == [10, 90] and runner.bar.n == 90


def test_a_bar_without_a_total_opens_at_the_first_progress(qtbot, runner):
    relay = runner.relay

    @thread_worker
    def download():
        for done in (100, 200, 300):
            relay(done, 300)

    seen: list[tuple[int, int]] = []
    runner.relay.changed.connect(lambda done, total: seen.append((runner.bar.n, runner.bar.total)))
    runner.start(download(), "Downloading ...", progress="Downloading")
    assert runner.bar is None and runner.shown == ["Downloading ..."]
    qtbot.waitUntil(lambda: not runner.busy, timeout=10_000)
    assert seen == [(100, 300), (200, 300), (300, 300)]
    assert runner.bar is None  # closed when the worker finished


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (DensePoseGazeError("No results store at /x: run DensePose."), "No results store at /x: run DensePose."),
        (ValueError("boom"), "Task failed: ValueError('boom')"),
    ],
)
def test_a_failing_worker_shows_its_error_and_frees_the_runner(qtbot, runner, error, message):
    @thread_worker(ignore_errors=True)
    def fail():
        raise error

    runner.start(fail(), "Working ...", progress="Work", total=5)
    assert runner.busy and runner.bar is not None
    qtbot.waitUntil(lambda: not runner.busy, timeout=10_000)
    assert runner.shown[-1] == message and runner.bar is None


def test_one_task_at_a_time(qtbot, runner):
    @thread_worker
    def wait():
        import time

        time.sleep(0.2)

    runner.start(wait(), "first")
    with pytest.raises(DensePoseGazeError, match="Wait until the current task has finished"):
        runner.start(wait(), "second")
    qtbot.waitUntil(lambda: not runner.busy, timeout=10_000)
