"""A run's append-only event log: its vocabulary (``event_types``), how an event is recorded in
the transaction that makes its change (``events``), and how committed events reach browsers
(``broadcast``)."""
