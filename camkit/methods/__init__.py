"""Attribution methods: ``explain(model, x, method=...)``, one file per method, one registry.

``camkit.methods`` is both this package and, as the API promises, a function: ``camkit.methods()``
lists the registered names. Python binds the subpackage to the attribute ``camkit.methods`` once it
is imported, so the module itself is made callable.
"""

import sys
import types

from camkit.methods import (  # noqa: F401  (each module registers its methods)
    ablationcam,
    augmented,
    cam,
    center_gaussian,
    eigencam,
    fullgrad,
    gradcam,
    gradcampp,
    gradceam,
    guided,
    hires,
    hirescam,
    layercam,
    random_map,
    scorecam,
    smoothgradcampp,
    xgradcam,
)
from camkit.methods.base import (
    DEFAULT_METHOD,
    Explanation,
    Method,
    MethodNotApplicable,
    Passes,
    explain,
    method_class,
    methods,
    register_method,
)
from camkit.methods.cam import NoCamHead
from camkit.methods.targets import Column, TargetPlan, parse_targets

__all__ = ["DEFAULT_METHOD", "Column", "Explanation", "Method", "MethodNotApplicable", "NoCamHead", "Passes",
           "TargetPlan", "explain", "method_class", "methods", "parse_targets", "register_method"]


class _CallableModule(types.ModuleType):
    def __call__(self) -> list[str]:
        return methods()


sys.modules[__name__].__class__ = _CallableModule
