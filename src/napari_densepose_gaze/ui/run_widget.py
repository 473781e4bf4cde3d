"""The "Run DensePose" dock widget: from a recording in the viewer to a layer of body parts.

Everything slow (downloading weights, loading the model, decoding, inference)
runs in a napari thread worker; the widget only gathers settings, shows
progress and tells the recording's session which frames arrived (the layers
redraw, the Gaze hits tables follow). A recording with results brings its
stored settings into the widget, so a re-run resumes instead of being refused.
The model loads only when a frame needs computing, and stays loaded for the next
run with the same settings, also of another Run widget of this napari.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
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
from qtpy.QtCore import QObject, Signal

from ..engine.defaults import DEFAULT_MODEL, DEFAULT_SCORE_THRESHOLD, DEVICES, MIN_SIZE_TEST, PRECISIONS
from ..engine.weights import weights_state
from ..engine.zoo import ZOO
from ..errors import DensePoseGazeError
from ..frame_selection import FrameSelection
from ..gaze_guided import default_densepose_mode
from ..pipeline import ModelSettings, Progress, RunOptions, RunSummary
from ..recording import Recording
from ..store import ResultsStore
from .layer_roles import SCENE_VIDEO, recording_folder_of, role_of
from .result_layers import show_results
from .run_model import Cancelled, RunModel
from .run_worker import densepose_worker
from .session import RecordingSession, session_of
from .status_text import breakable, make_wrapping
from .viewer_setup import prepare_viewer
from .worker_runner import WorkerRunner

if TYPE_CHECKING:
    import napari


_SELECTION_MODES = [("all frames", "all"), ("frames with valid gaze", "gaze"), ("one frame per fixation", "fixations")]
_DENSEPOSE_MODES = [("near the gaze", "gazed"), ("everyone", "all")]
_LOADING = "Loading the model (and checking its checkpoint) ..."


class _StatusRelay(QObject):
    """Carries a status line from the run's worker thread to the widget (a queued signal)."""

    text = Signal(str)


class RunDensePoseWidget(Container):
    """Pick a recording's video, a model and the frames; Run fills the "body parts" layer."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        self._viewer = napari_viewer
        self._cancel_requested = False
        self._parts_layer: Any = None
        self._adopted_from: Any = None  # the store whose settings the widget shows
        self._processed: np.ndarray | None = None  # frames the running store had processed at the last report

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
        self.densepose = ComboBox(label="DensePose", choices=_DENSEPOSE_MODES, value=default_densepose_mode("all"))
        self.densepose.tooltip = (
            "near the gaze: body parts only for the people a gaze hit can reach (the same hit tables, less work); "
            "everyone: for every person found, and a run with it completes frames made near the gaze. "
            "Follows the frames choice: near the gaze for gaze and fixation frames, everyone for all frames."
        )
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
        make_wrapping(self.status.native)
        make_wrapping(self.model_state.native)
        self.tasks = WorkerRunner(show_status=self._show_status, busy_changed=self._busy_changed,
                                  failure="DensePose run failed")
        self.tasks.relay.changed.connect(self._show_download)
        self._run_status = _StatusRelay()
        self._run_status.text.connect(self._say)

        super().__init__(
            widgets=[
                self.video, self.model, self.model_state, self.download, self.weights, self.device,
                self.precision, self.threshold, self.input_size, self.mode, self.densepose, self.step, self.first,
                self.last, self.start_event, self.end_event, self.output, self.overwrite, self.run_button,
                self.cancel_button, self.status,
            ]
        )
        self.model.changed.connect(self._show_weights_state)
        self.weights.changed.connect(self._show_weights_state)
        self.download.changed.connect(self._download)
        self.video.changed.connect(self._video_changed)
        self.mode.changed.connect(self._mode_changed)
        self.run_button.changed.connect(self._run)
        self.cancel_button.changed.connect(self._cancel)
        prepare_viewer(napari_viewer)
        napari_viewer.layers.events.inserted.connect(self._layers_changed)
        napari_viewer.layers.events.removed.connect(self._layers_changed)
        self._layers_changed()
        self._show_weights_state()
        self._add_tooltips()

    def _add_tooltips(self) -> None:
        tips = {
            self.video: "The scene video layer of the recording to run DensePose on.",
            self.model: "DensePose model-zoo config; a recording with results shows the one they were made with.",
            self.download: "Fetch the model's weights now (Run also downloads them when needed).",
            self.device: "auto: CUDA, then Apple MPS, then CPU.",
            self.mode: "Which frames: all, those with valid gaze, or one key frame per fixation.",
            self.step: "Process every Nth frame of the selection.",
            self.first: "First frame index (0: the start).",
            self.last: "Last frame index, included (-1: to the end).",
            self.start_event: "Start at this event of events.csv.",
            self.end_event: "Stop at this event of events.csv.",
            self.overwrite: "Also re-run frames corrected by hand (the corrections are lost).",
            self.run_button: "Process the selected frames; frames already done are skipped (resume).",
            self.cancel_button: "Stop after the current batch, or stop a download or model load.",
        }
        for widget, tip in tips.items():
            if not widget.tooltip:
                widget.tooltip = tip

    def _mode_changed(self, _value: Any = None) -> None:
        # the command line's default for the selection; the user may pick the other one after
        self.densepose.value = default_densepose_mode(self.mode.value)

    def _video_changed(self, _value: Any = None) -> None:
        self.start_event.reset_choices()
        self.end_event.reset_choices()
        self.adopt_stored_settings()

    def adopt_stored_settings(self) -> bool:
        """Show the model settings the chosen recording's results were made with; False if it has none.

        A run with other settings would be refused by the store ("made with
        different settings"), so the widget starts from the stored ones.
        """
        try:
            store = self.session().store
        except DensePoseGazeError:
            return False
        if store is None or store is self._adopted_from:
            return store is not None
        self._adopted_from = store
        meta = store.metadata
        if meta.get("model") in ZOO:
            self.model.value = meta["model"]
        if meta.get("score_threshold") is not None:
            self.threshold.value = float(meta["score_threshold"])
        size = meta.get("input_size")
        if isinstance(size, list | tuple) and size:
            self.input_size.value = int(size[0])
        if meta.get("precision") in PRECISIONS:
            self.precision.value = meta["precision"]
        weights_file = meta.get("weights_file")
        zoo_file = ZOO[self.model.value].filename if self.model.value in ZOO else None
        note = ""
        if weights_file and weights_file != zoo_file and str(self.weights.value) in ("", "."):
            note = f" They were made with the checkpoint file {weights_file}: pick it under checkpoint file."
        self._say(f"Settings of the stored results ({meta.get('model')}, threshold "
                  f"{meta.get('score_threshold')}, input size {self.input_size.value}).{note}")
        return True

    # ------------------------------------------------------------ choices
    def _video_layers(self, _widget: Any = None) -> list[tuple[str, Any]]:
        # the recording's name: what tells two open recordings apart (a layer's name may be edited)
        return [(_recording_name(layer), layer) for layer in self._viewer.layers if role_of(layer) == SCENE_VIDEO]

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

        self._cancel_requested = False
        progress = self._cancellable(relay)

        @thread_worker(ignore_errors=True)  # errors go to the runner, not to the event loop
        def fetch():
            try:
                return resolve_weights(name, progress=progress)
            except Exception:
                if self._cancel_requested:
                    return None
                raise

        worker = fetch()
        worker.returned.connect(lambda path: show_info(f"Weights of {name} saved to {path}") if path else
                                self._say("Download cancelled."))
        self.tasks.start(worker, f"Downloading {name} ...", progress=f"Downloading {name}")

    def _cancellable(self, progress: Any) -> Any:
        """``progress`` that raises once the user pressed Cancel (stops a download between chunks)."""

        def report(done: int, total: int) -> None:
            if self._cancel_requested:
                raise Cancelled
            progress(done, total)

        return report

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
            densepose=self.densepose.value,
        )

    def _run(self, _value: Any = None) -> None:
        try:
            session = self.session()
            model, options = self.model_settings(), self.run_options()
        except DensePoseGazeError as exc:
            show_error(str(exc))
            return
        self._cancel_requested = False
        self._processed = None
        try:
            store = _shared_store(session, options)
        except DensePoseGazeError as exc:
            show_error(str(exc))
            return
        source = RunModel(model, options, download=self._cancellable(self.tasks.relay),
                          cancelled=lambda: self._cancel_requested,
                          on_load=lambda: self._run_status.text.emit(_LOADING))
        worker = densepose_worker(session.recording, source, options, store,
                                  cancel_requested=lambda: self._cancel_requested)
        worker.yielded.connect(lambda message: self._on_yield(session, message))
        worker.returned.connect(self._on_done)
        starting = "Starting with the loaded model ..." if source.loaded is not None else "Preparing the run ..."
        # a missing model downloads first: its bar opens at the first progress call
        self.tasks.start(worker, starting, progress=f"Downloading {model.model}")

    def _show_download(self, done: int, total: int) -> None:
        """Weights download: bytes so far of ``total`` (0 when the server does not say)."""
        if self.tasks.busy:  # also once the run showed its store: an existing store's model loads later
            megabytes = f"{done / 2**20:.0f}" + (f" of {total / 2**20:.0f}" if total else "")
            self._say(f"Downloading weights: {megabytes} MB")

    def _on_yield(self, session: RecordingSession, message: tuple) -> None:
        kind = message[0]
        if kind == "store":
            _, store, n = message
            session.use_store(store)  # the run's store is the session's from now on
            self._parts_layer, _ = show_results(self._viewer, session)
            self.tasks.open_bar("DensePose", max(n, 1))
            self._processed = store.processed_frames()
            self._say(f"{n} frames selected")
        elif kind == "progress":
            state: Progress = message[1]
            self.tasks.progress(state.done, max(state.total, 1))
            left = "" if state.seconds_left is None else f", {state.seconds_left:.0f} s left"
            self._say(f"{state.done}/{state.total} frames, {state.frames_per_s:.1f} frames/s{left}")
            self._show_written(session)

    def _show_written(self, session: RecordingSession) -> None:
        """Redraw the result layers and tell the session which frames the run has written since the last report."""
        store = session.store
        if store is None:
            return
        processed = store.processed_frames()
        before = self._processed if self._processed is not None else np.zeros(0, np.int64)
        self._processed = processed
        session.show_written(np.setdiff1d(processed, before))

    def _on_done(self, summary: RunSummary | None) -> None:
        if isinstance(summary, RunSummary):
            skipped = f"{summary.skipped_done} already done, {summary.skipped_edited} edited by hand kept"
            if summary.skipped_claimed:
                skipped += f", {summary.skipped_claimed} computed by another run"
            if _nothing_to_compute(summary):
                self._say(f"Nothing to compute in the {summary.selected} selected frames: {skipped}.")
            else:
                verb = "Cancelled after" if summary.cancelled else "Done:"
                self._say(f"{verb} {summary.processed} frames in {summary.seconds:.0f} s; {skipped}")
            session = _session_or_none(self.video.value)
            if session is not None and self._parts_layer is not None:
                self._show_written(session)

    def _cancel(self, _value: Any = None) -> None:
        self._cancel_requested = True
        self._say("Cancelling after this batch ..." if self._parts_layer is not None else "Cancelling ...")

    def _show_status(self, text: str) -> None:
        self._say(text)

    def _say(self, text: str) -> None:
        self.status.value = breakable(text)

    def _busy_changed(self) -> None:
        busy = self.tasks.busy
        self.run_button.enabled = not busy
        self.cancel_button.enabled = busy
        if busy:
            self.download.enabled = False
        else:
            self._parts_layer = None
            self._show_weights_state()


def _nothing_to_compute(summary: RunSummary) -> bool:
    """Every selected frame was done, edited or claimed already: the run computed (and loaded) nothing."""
    skipped = summary.skipped_done + summary.skipped_edited + summary.skipped_claimed
    return not summary.cancelled and summary.processed == 0 and summary.selected == skipped


def _shared_store(session: RecordingSession, options: RunOptions) -> ResultsStore | None:
    """The session's open store when the run writes there (the UI and the run then share one handle), else None.

    A results folder chosen elsewhere is opened (or made) by the run itself,
    and becomes the session's store when the run starts.
    """
    store = session.store
    if store is None:
        return None
    if options.output is not None and Path(options.output).resolve() != Path(store.folder).resolve():
        return None
    return store


def _session_or_none(layer: Any) -> RecordingSession | None:
    try:
        return session_of(layer)
    except DensePoseGazeError:
        return None


def _recording_name(layer: Any) -> str:
    session = _session_or_none(layer)
    if session is not None:
        return session.recording.name
    folder = recording_folder_of(layer)
    return folder.name if folder is not None else layer.name
