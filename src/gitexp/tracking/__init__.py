"""``gitexp.tracking``: where MLflow code finds MlflowClient and the tracking URI."""

from ..client import Client, MlflowClient
from ..fluent import get_tracking_uri, is_tracking_uri_set, set_tracking_uri

__all__ = ["Client", "MlflowClient", "get_tracking_uri", "is_tracking_uri_set", "set_tracking_uri"]
