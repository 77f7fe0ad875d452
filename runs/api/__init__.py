"""The JSON API under /api/v1/ (django-ninja): the pages' read side (``runs.pages``) as JSON and
the pages' actions (``runs.actions``) as writes, for a token (``auth``) or the session.

Where to look: ``main`` (the API, its docs, its URLs), ``auth`` (who calls, with which scopes;
``resolve_bearer`` is the one token check), ``problems`` (every error as RFC 9457), ``pagination``
(cursors), ``ratelimit`` (per token), ``schemas`` and ``serialize`` (the shapes), and one module
per resource: ``runs``, ``agents`` (and events), ``reports`` (and findings), ``approvals``.
"""
