"""What the model-free baseline maps share (``center_gaussian.py``, ``random_map.py``).

A baseline map ignores the model: it is a rule of the input's shape (and, for the random map, of the sample's
bytes), the same for every class. It sits in the comparison tables beside the methods as the score a map gets
for free: a method that does not beat it explains nothing the benchmark can see. The model still runs one forward
pass, so the targets and scores of the columns are reported as for any method; no layer is used and no backward
pass runs. ``raw`` is the map at the input's resolution before normalisation; ``maps`` is it divided by its max.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import tensorflow as tf

from camkit.methods.base import Batch, Method
from camkit.methods.mapmath import normalise


class BaselineMap(Method):
    """A map of the input's shape alone (module docstring); subclasses implement :meth:`baseline_maps`."""

    uses_layer = False
    needs_grads = False

    def explain_batch(self, batch: Batch, size: tuple[int, ...]) -> tuple[tf.Tensor, tf.Tensor]:
        raw = tf.convert_to_tensor(self.baseline_maps(np.asarray(batch.inputs), size), tf.float32)
        return raw, normalise(raw, signed=False)

    @abstractmethod
    def baseline_maps(self, inputs: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
        """(B, *size) non-negative maps for ``inputs`` (B, *size, C)."""
