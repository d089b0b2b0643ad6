"""The Celery application: configured from Django settings (the ``CELERY_`` names)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webhooks_project.settings")

app = Celery("webhooks_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _drop_stale_connections(**_kwargs: object) -> None:
    # Connections are kept across tasks for speed (CELERY_DB_REUSE_MAX); one broken by a
    # database restart or past CONN_MAX_AGE is closed here and reopened on first use.
    from django.db import close_old_connections

    close_old_connections()
