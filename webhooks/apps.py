from typing import Any

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Organizations and webhooks"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from webhooks import login_throttle

        def failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
            login_throttle.record_failure(request=request, username=credentials.get("username"))

        def succeeded(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
            login_throttle.clear(request=request, username=user.get_username())

        user_login_failed.connect(failed, weak=False, dispatch_uid="webhooks.login_throttle.failed")
        user_logged_in.connect(succeeded, weak=False, dispatch_uid="webhooks.login_throttle.succeeded")
