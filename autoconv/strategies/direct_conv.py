"""The direct strategy: ``F.conv1d`` itself (oneDNN on CPU, cuDNN on CUDA).

``direct`` *is* ``torch.nn.functional.conv1d``, not a wrapper around it: the reference every
other strategy matches, and, when it wins, what a tuned call runs with no extra Python frame.
"""

from __future__ import annotations

import torch.nn.functional as F

direct = F.conv1d
