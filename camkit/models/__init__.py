"""Model builders, all reachable through one registry."""

from camkit.models import conv_ae, densenet_fcn, fcn, resnet1d, small_cnn, vgg  # noqa: F401  (registers builders)
from camkit.models.registry import build_model, check_inputs, model_builder, model_names, register_model

__all__ = ["build_model", "check_inputs", "model_builder", "model_names", "register_model"]
