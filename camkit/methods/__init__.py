"""Attribution methods: ``explain(model, x, method=...)``, one file per method, one registry.

``camkit.methods`` is both this package and, as the API promises, a function: ``camkit.methods()``
lists the registered names. Python binds the subpackage to the attribute ``camkit.methods`` once it
is imported, so the module itself is made callable.
"""

import sys
import types

from camkit.methods import augmented, cam, gradcam, gradcampp, gradceam, guided, hires  # noqa: F401
from camkit.methods.base import Explanation, Method, explain, methods, register_method

__all__ = ["Explanation", "Method", "explain", "methods", "register_method"]


class _CallableModule(types.ModuleType):
    def __call__(self) -> list[str]:
        return methods()


sys.modules[__name__].__class__ = _CallableModule
