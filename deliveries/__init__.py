"""Deliveries: each event to each subscribed webhook, signed, sent, retried and recorded.

One job per module, in the order an event meets them: ``fanout`` (its deliveries, created
at emit), ``dispatch`` (waking a webhook's drain), ``tasks`` (the Celery entry points),
``drain`` (the send loop), ``concurrency`` and ``ratelimit`` (the limits it runs within),
``leases`` (claim, release and record, in PostgreSQL), ``signing`` and ``http`` (what goes
on the wire), ``schedule`` (when a retry comes). Beside the flow: ``periodic`` (the sweeper
and hourly housekeeping), ``partitions`` (the history's daily partitions, and retention),
``services`` (manual operations), ``selectors``, ``api``, ``serializers`` and ``metrics``
(reads), ``rates`` (what a success rate is, for all of them), ``verify`` (for receivers).
"""
