"""The worker side of a run: one agent's execution (``worker``, with ``runtime`` as the
provider's context), what report agents read (``report_inputs``), and the sweeper thread that
re-sends or settles agents whose messages were lost. It calls ``runs.actions`` for every state
change."""
