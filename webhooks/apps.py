from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Organizations and webhooks"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from webhooks import login_throttle

        user_login_failed.connect(login_throttle.on_login_failed, dispatch_uid="webhooks.login_throttle.failed")
        user_logged_in.connect(login_throttle.on_logged_in, dispatch_uid="webhooks.login_throttle.succeeded")
