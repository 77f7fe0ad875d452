"""The run page: its fragments (``live``) and what they are computed from (the task table in
``dashboard``, the agent ``tree``, the ``timeline`` and its ``charts``, the budget ``forecast``)."""
