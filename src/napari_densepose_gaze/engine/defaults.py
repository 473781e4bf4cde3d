"""The engine's defaults, each defined here and nowhere else.

Detectron2's DensePose configs resize frames at test time so that the shortest
edge has 800 pixels and the longest at most 1333; the parity fixtures are made
with these sizes, so they are also what "exact results" means. The widget, the
command line, the pipeline and both engines read them from here.
"""

from __future__ import annotations

__all__ = [
    "MIN_SIZE_TEST",
    "MAX_SIZE_TEST",
    "MIN_INPUT_SIZE",
    "MAX_INPUT_SIZE",
    "DEFAULT_MODEL",
    "DEFAULT_SCORE_THRESHOLD",
    "DEVICES",
    "PRECISIONS",
    "default_max_input_size",
]

#: Detectron2's ``INPUT.MIN_SIZE_TEST``: the shortest edge of the network input.
MIN_SIZE_TEST = 800
#: Detectron2's ``INPUT.MAX_SIZE_TEST``: the longest edge is capped at this.
MAX_SIZE_TEST = 1333
#: The smallest shortest edge the engine takes: the backbone's coarsest level has a stride of 32 pixels.
MIN_INPUT_SIZE = 32
#: The largest edge of the network input. A batch of 8 frames of 4096x4096 px makes the FPN's stride-4 maps
#: (256 channels) 2**31 elements, where CUDA kernels with 32-bit indexing stop; and no Pupil Labs scene
#: camera (Neon 1600x1200, Invisible 1088x1080) gains anything from being upscaled that far.
MAX_INPUT_SIZE = 4096
#: The zoo model used when none is named.
DEFAULT_MODEL = "R_50_FPN_DL_s1x"
#: Person detections scoring below this are dropped (the peer tool's value too).
DEFAULT_SCORE_THRESHOLD = 0.7
#: Device names a user can pick ("auto": CUDA, then MPS, then CPU; "cuda:N" is accepted too).
DEVICES = ("auto", "cpu", "cuda", "mps")
#: Compute precisions ("auto": bfloat16 on CUDA, else float32).
PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def default_max_input_size(input_size: int) -> int:
    """The longest-edge limit for a shortest edge of ``input_size`` that keeps Detectron2's ratio."""
    return round(input_size * MAX_SIZE_TEST / MIN_SIZE_TEST)
