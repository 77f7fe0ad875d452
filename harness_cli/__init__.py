"""The `harness` command: a client of the Agent Harness API for CI and scripts (standard
library only). ``main`` is the command; ``client`` talks to /api/v1/."""
