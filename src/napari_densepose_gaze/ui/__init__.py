"""The napari face of napari-densepose-gaze: reader, sample data and widgets.

The only part of the package that imports Qt or napari.
"""

import sys

# torchvision.ops imports torch._dynamo, which imports triton when it is
# installed (CUDA builds of torch bring it). Loading triton's bundled LLVM into
# a process whose OpenGL canvas already runs on Mesa (llvmpipe, Xvfb, VMs,
# remote desktops) crashes the process with a segmentation fault. The engine
# never compiles kernels, so inside napari triton is simply kept out; a
# process that already imported it keeps it.
sys.modules.setdefault("triton", None)
