"""The dashboard under ``/ui/``: Organization Settings › Integrations › Webhooks."""

from django.urls import path

from dashboard import views

app_name = "dashboard"

WEBHOOKS = "settings/integrations/webhooks"
WEBHOOK = f"{WEBHOOKS}/<str:webhook_id>"

urlpatterns = [
    path("", views.home, name="home"),
    path("login", views.login_view, name="login"),
    path("logout", views.logout_view, name="logout"),
    path(WEBHOOKS, views.webhook_list, name="webhook-list"),
    path(f"{WEBHOOKS}/new", views.webhook_create, name="webhook-create"),
    path(WEBHOOK, views.webhook_detail, name="webhook-detail"),
    path(f"{WEBHOOK}/edit", views.webhook_edit, name="webhook-edit"),
    path(f"{WEBHOOK}/test", views.webhook_send_test, name="webhook-test"),
    path(f"{WEBHOOK}/enable", views.webhook_set_enabled, {"enabled": True}, name="webhook-enable"),
    path(f"{WEBHOOK}/disable", views.webhook_set_enabled, {"enabled": False}, name="webhook-disable"),
    path(f"{WEBHOOK}/rotate-secret", views.webhook_rotate_secret, name="webhook-rotate-secret"),
    path(
        f"{WEBHOOK}/expire-previous-secret",
        views.webhook_expire_previous_secret,
        name="webhook-expire-previous-secret",
    ),
    path(f"{WEBHOOK}/delete", views.webhook_delete, name="webhook-delete"),
    path(f"{WEBHOOK}/deliveries/<str:delivery_id>", views.delivery_detail, name="delivery-detail"),
    path(f"{WEBHOOK}/deliveries/<str:delivery_id>/payload", views.delivery_payload, name="delivery-payload"),
    path(f"{WEBHOOK}/deliveries/<str:delivery_id>/retry", views.delivery_retry, name="delivery-retry"),
]
