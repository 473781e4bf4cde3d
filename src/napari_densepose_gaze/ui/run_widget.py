"""The "Run DensePose" dock widget: from a recording in the viewer to a layer of body parts.

Everything slow (downloading weights, loading the model, decoding, inference)
runs in a napari thread worker; the widget only gathers settings, shows
progress and repaints the "body parts" layer as frames arrive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
)
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info

from ..engine.defaults import DEFAULT_MODEL, DEFAULT_SCORE_THRESHOLD, DEVICES, MIN_SIZE_TEST, PRECISIONS
from ..engine.weights import weights_state
from ..engine.zoo import ZOO
from ..errors import DensePoseGazeError
from ..frame_selection import FrameSelection
from ..pipeline import ModelSettings, Progress, RunOptions, RunSummary, iter_densepose, prepare_run
from ..recording import Recording
from .layer_roles import SCENE_VIDEO, role_of
from .result_layers import show_results
from .session import RecordingSession, session_of, watch_viewer
from .worker_runner import WorkerRunner

if TYPE_CHECKING:
    import napari

_SELECTION_MODES = [("all frames", "all"), ("frames with valid gaze", "gaze"), ("one frame per fixation", "fixations")]


class RunDensePoseWidget(Container):
    """Pick a recording's video, a model and the frames; Run fills the "body parts" layer."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        self._viewer = napari_viewer
        self._cancel_requested = False
        self._parts_layer: Any = None

        self.video = ComboBox(label="video", choices=self._video_layers, nullable=True)
        self.model = ComboBox(label="model", choices=list(ZOO), value=DEFAULT_MODEL)
        self.model_state = Label(label="weights")
        self.download = PushButton(text="Download weights")
        self.weights = FileEdit(label="checkpoint file", mode="r", filter="*.pkl *.pth *.pt", value="")
        self.weights.tooltip = "A local checkpoint instead of the model-zoo file (leave empty to use the zoo)."
        self.device = ComboBox(label="device", choices=list(DEVICES), value=DEVICES[0])
        self.precision = ComboBox(label="precision", choices=list(PRECISIONS), value=PRECISIONS[0])
        self.precision.tooltip = "auto: bfloat16 (or float16) on CUDA, float32 elsewhere."
        self.threshold = FloatSpinBox(label="score threshold", value=DEFAULT_SCORE_THRESHOLD, min=0.05, max=0.9999,
                                      step=0.01)
        self.threshold.native.setDecimals(4)  # thresholds like 0.995 matter for crowded scenes
        self.threshold.tooltip = (
            f"Detections scoring below this are dropped ({DEFAULT_SCORE_THRESHOLD:g} as the peer tool)."
        )
        self.input_size = SpinBox(label="input size [px]", value=MIN_SIZE_TEST, min=64, max=1600, step=32)
        self.input_size.tooltip = (
            "Frames are resized so their shortest edge has this many pixels before inference. "
            f"{MIN_SIZE_TEST} is Detectron2's size (exact results); smaller is faster and coarser."
        )
        self.mode = ComboBox(label="frames", choices=_SELECTION_MODES, value="all")
        self.step = SpinBox(label="every Nth frame", value=1, min=1, max=10_000)
        self.first = SpinBox(label="first frame", value=0, min=0, max=10_000_000)
        self.last = SpinBox(label="last frame (-1: end)", value=-1, min=-1, max=10_000_000)
        self.start_event = ComboBox(label="from event", choices=self._event_choices, nullable=True, value=None)
        self.end_event = ComboBox(label="to event", choices=self._event_choices, nullable=True, value=None)
        self.output = FileEdit(label="results folder", mode="d", value="")
        self.output.tooltip = "Empty: a folder '<recording>.densepose' beside the recording."
        self.overwrite = CheckBox(label="re-run frames edited by hand", value=False)
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = Label(label="status", value="")
        self.tasks = WorkerRunner(show_status=self._show_status, busy_changed=self._busy_changed,
                                  failure="DensePose run failed")
        self.tasks.relay.changed.connect(self._show_download)

        super().__init__(
            widgets=[
                self.video, self.model, self.model_state, self.download, self.weights, self.device,
                self.precision, self.threshold, self.input_size, self.mode, self.step, self.first, self.last,
                self.start_event, self.end_event, self.output, self.overwrite, self.run_button,
                self.cancel_button, self.status,
            ]
        )
        self.model.changed.connect(self._show_weights_state)
        self.weights.changed.connect(self._show_weights_state)
        self.download.changed.connect(self._download)
        self.video.changed.connect(lambda _: (self.start_event.reset_choices(), self.end_event.reset_choices()))
        self.run_button.changed.connect(self._run)
        self.cancel_button.changed.connect(self._cancel)
        watch_viewer(napari_viewer)
        napari_viewer.layers.events.inserted.connect(self._layers_changed)
        napari_viewer.layers.events.removed.connect(self._layers_changed)
        self._layers_changed()
        self._show_weights_state()

    # ------------------------------------------------------------ choices
    def _video_layers(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in self._viewer.layers if role_of(layer) == SCENE_VIDEO]

    def _event_choices(self, _widget: Any = None) -> list[str]:
        recording = self._recording_or_none()
        if recording is None or "name" not in recording.events:
            return []
        return list(dict.fromkeys(recording.events["name"].astype(str)))

    def _layers_changed(self, _event: Any = None) -> None:
        self.video.reset_choices()
        if self.video.value is None and self.video.choices:
            self.video.value = self.video.choices[-1]
        self.start_event.reset_choices()
        self.end_event.reset_choices()

    def _recording_or_none(self) -> Recording | None:
        try:
            return self.recording()
        except DensePoseGazeError:
            return None

    def session(self) -> RecordingSession:
        """The session of the chosen video layer's recording."""
        session = session_of(self.video.value)
        if session is None:
            raise DensePoseGazeError("Open a recording first (drag its folder onto napari), then pick its video.")
        return session

    def recording(self) -> Recording:
        """The recording of the chosen video layer (read once, then kept)."""
        return self.session().recording

    # ------------------------------------------------------------ weights
    def _show_weights_state(self, _value: Any = None) -> None:
        if str(self.weights.value) not in ("", "."):
            state = weights_state(self.weights.value)
            self.model_state.value = "local file" if state == "local" else "file not found"
            self.download.enabled = False
            return
        state = weights_state(self.model.value)
        self.model_state.value = "in cache" if state == "downloaded" else "not downloaded yet (downloads on Run)"
        self.download.enabled = state != "downloaded" and not self.tasks.busy

    def _download(self, _value: Any = None) -> None:
        from ..engine.weights import resolve_weights

        name, relay = self.model.value, self.tasks.relay

        @thread_worker(ignore_errors=True)  # errors go to the runner, not to the event loop
        def fetch():
            return resolve_weights(name, progress=relay)

        worker = fetch()
        worker.returned.connect(lambda path: show_info(f"Weights of {name} saved to {path}"))
        self.tasks.start(worker, f"Downloading {name} ...", progress=f"Downloading {name}")

    # ------------------------------------------------------------ running
    def model_settings(self) -> ModelSettings:
        """The model settings as the widget shows them."""
        weights = str(self.weights.value)
        return ModelSettings(
            model=self.model.value,
            weights=weights if weights not in ("", ".") else None,
            score_threshold=float(self.threshold.value),
            input_size=int(self.input_size.value),
            precision=self.precision.value,
        )

    def run_options(self) -> RunOptions:
        """Device, frames and output as the widget shows them."""
        output = str(self.output.value)
        last = int(self.last.value)
        selection = FrameSelection(
            mode=self.mode.value,
            step=int(self.step.value),
            start=int(self.first.value) or None,
            stop=None if last < 0 else last + 1,
            start_event=self.start_event.value or None,
            end_event=self.end_event.value or None,
        )
        return RunOptions(
            device=self.device.value,
            selection=selection,
            output=output if output not in ("", ".") else None,
            overwrite_edited=bool(self.overwrite.value),
        )

    def _run(self, _value: Any = None) -> None:
        try:
            session = self.session()
            model, options = self.model_settings(), self.run_options()
        except DensePoseGazeError as exc:
            show_error(str(exc))
            return
        self._cancel_requested = False
        worker = self._run_worker(session.recording, model, options)
        worker.yielded.connect(lambda message: self._on_yield(session, message))
        worker.returned.connect(self._on_done)
        # a missing model downloads first: its bar opens at the first progress call
        self.tasks.start(worker, "Loading the model ...", progress=f"Downloading {model.model}")

    def _run_worker(self, recording: Recording, model: ModelSettings, options: RunOptions):
        relay = self.tasks.relay

        @thread_worker(ignore_errors=True)  # errors go to the runner, not to the event loop
        def work():
            prepared = prepare_run(recording, model, options, download_progress=relay)
            yield ("store", prepared.store, len(prepared.frames))
            run = iter_densepose(recording, prepared.predictor, prepared.store, prepared.frames,
                                 overwrite_edited=options.overwrite_edited)
            try:
                state = next(run)
                while True:
                    yield ("progress", state)
                    state = run.send(self._cancel_requested)
            except StopIteration as done:
                return done.value

        return work()

    def _show_download(self, done: int, total: int) -> None:
        """Weights download: bytes so far of ``total`` (0 when the server does not say)."""
        if self.tasks.busy and self._parts_layer is None:
            megabytes = f"{done / 2**20:.0f}" + (f" of {total / 2**20:.0f}" if total else "")
            self.status.value = f"Downloading weights: {megabytes} MB"

    def _on_yield(self, session: RecordingSession, message: tuple) -> None:
        kind = message[0]
        if kind == "store":
            _, store, n = message
            session.use_store(store)  # the run's store is the session's from now on
            self._parts_layer, _ = show_results(self._viewer, session)
            self.tasks.open_bar("DensePose", max(n, 1))
            self.status.value = f"{n} frames selected"
        elif kind == "progress":
            state: Progress = message[1]
            self.tasks.progress(state.done, max(state.total, 1))
            left = "" if state.seconds_left is None else f", {state.seconds_left:.0f} s left"
            self.status.value = f"{state.done}/{state.total} frames, {state.frames_per_s:.1f} frames/s{left}"
            self._parts_layer.refresh()

    def _on_done(self, summary: RunSummary | None) -> None:
        if isinstance(summary, RunSummary):
            verb = "Cancelled after" if summary.cancelled else "Done:"
            self.status.value = (
                f"{verb} {summary.processed} frames in {summary.seconds:.0f} s; "
                f"{summary.skipped_done} already done, {summary.skipped_edited} edited by hand kept"
            )
            if self._parts_layer is not None:
                self._parts_layer.refresh()

    def _cancel(self, _value: Any = None) -> None:
        self._cancel_requested = True
        self.status.value = "Cancelling after this batch ..."

    def _show_status(self, text: str) -> None:
        self.status.value = text

    def _busy_changed(self) -> None:
        busy = self.tasks.busy
        self.run_button.enabled = not busy
        self.cancel_button.enabled = busy
        if busy:
            self.download.enabled = False
        else:
            self._parts_layer = None
            self._show_weights_state()
