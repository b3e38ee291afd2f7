"""Metrics: classification, clustering, and the localization and faithfulness metric plugins.

The plugins (one file per family, each a registered :class:`Metric`) are imported here so that the registry
lists them: :func:`metric_classes`, :func:`select_metrics`. Their import order is the registration order, and
so the order of the per-image CSV columns, summary keys and table columns.
"""

# isort: off
from camkit.metrics import loc_error, gt_known, maxboxacc, pointing, cls_error  # noqa: F401
from camkit.metrics import faithfulness  # noqa: F401
# isort: on
from camkit.metrics.base import (
    NEEDS,
    BoxSettings,
    MapBatch,
    MethodRun,
    Metric,
    make_metric,
    metric_classes,
    register_metric,
    select_metrics,
    unregister_metric,
)

__all__ = ["NEEDS", "BoxSettings", "MapBatch", "MethodRun", "Metric", "make_metric", "metric_classes",
           "register_metric", "select_metrics", "unregister_metric"]
