"""URLs: the documented API under ``/ui/api/`` (no trailing slashes), the admin, health."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from deliveries import api as deliveries_api
from events import api as events_api
from webhooks import api as webhooks_api
from webhooks_project import views

api = [
    path("ui/api/webhooks", webhooks_api.WebhookListView.as_view(), name="webhook-list"),
    path("ui/api/webhooks/test", deliveries_api.TestEventView.as_view(), name="webhook-test"),
    path("ui/api/webhooks/<str:webhook_id>", webhooks_api.WebhookDetailView.as_view(), name="webhook-detail"),
    path(
        "ui/api/webhooks/<str:webhook_id>/rotate-secret",
        webhooks_api.WebhookRotateSecretView.as_view(),
        name="webhook-rotate-secret",
    ),
    path(
        "ui/api/webhooks/<str:webhook_id>/expire-previous-secret",
        webhooks_api.WebhookExpirePreviousSecretView.as_view(),
        name="webhook-expire-previous-secret",
    ),
    path(
        "ui/api/webhooks/<str:webhook_id>/filter-check",
        webhooks_api.WebhookFilterCheckView.as_view(),
        name="webhook-filter-check",
    ),
    path(
        "ui/api/webhooks/<str:webhook_id>/recover", deliveries_api.WebhookRecoverView.as_view(), name="webhook-recover"
    ),
    path("ui/api/webhooks/<str:webhook_id>/stats", deliveries_api.WebhookStatsView.as_view(), name="webhook-stats"),
    path(
        "ui/api/webhooks/<str:webhook_id>/deliveries", deliveries_api.DeliveryListView.as_view(), name="delivery-list"
    ),
    path(
        "ui/api/webhooks/<str:webhook_id>/deliveries/<str:delivery_id>",
        deliveries_api.DeliveryDetailView.as_view(),
        name="delivery-detail",
    ),
    path(
        "ui/api/webhooks/<str:webhook_id>/deliveries/<str:delivery_id>/payload",
        deliveries_api.DeliveryPayloadView.as_view(),
        name="delivery-payload",
    ),
    path(
        "ui/api/webhooks/<str:webhook_id>/deliveries/<str:delivery_id>/retry",
        deliveries_api.DeliveryRetryView.as_view(),
        name="delivery-retry",
    ),
    path("ui/api/event-types", webhooks_api.EventTypeListView.as_view(), name="event-types"),
    path("ui/api/events", events_api.EventCreateView.as_view(), name="event-create"),
    path("ui/api/events/batch", events_api.EventBatchCreateView.as_view(), name="event-batch-create"),
    path("ui/api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("ui/api/docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    *api,
    # Browsers ask for /favicon.ico where a page names no icon (a JSON body opened in a tab).
    path("favicon.ico", RedirectView.as_view(url=static("dashboard/favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics_view, name="metrics"),
    path("ui/", include("dashboard.urls")),
]

handler404 = "webhooks_project.views.not_found"
handler500 = "webhooks_project.views.server_error"
