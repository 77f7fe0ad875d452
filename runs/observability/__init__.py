"""What operators see beside the pages: a run's trace (``tracing``), the spans stored for the
timeline and the audit trail (``span_store``), and the health of the run's services
(``health``)."""
