"""The events app: nothing to do at start-up (the delivery app registers its fan-out)."""

from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Events"
