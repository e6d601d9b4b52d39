"""The HTTP prediction service: the FastAPI app (``app``), its configuration (``settings``), the
request contract generated from the feature schema (``requests``), the prediction log
(``prediction_log``) and the Prometheus metrics (``telemetry``)."""
