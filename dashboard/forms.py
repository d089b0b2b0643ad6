"""Dashboard forms. Validation reuses the API's validators, so both refuse the same input."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from rest_framework import serializers

from deliveries.models import Delivery
from events import catalogue
from webhooks import login_throttle
from webhooks.destinations import MAX_URL_LENGTH
from webhooks.filters import EXAMPLES, FilterError, validate_filter
from webhooks.selectors import organization_of_user
from webhooks.serializers import (
    MAX_SECRET_LENGTH,
    MIN_SECRET_LENGTH,
    validate_destination,
    validate_event_list,
    validate_secret,
)

ALL_EVENTS_LABEL = "All events (*)"
# Delivery ids as webhooks_project.ids makes them; anything else is no cursor at all.
DELIVERY_ID_PATTERN = r"^dlv_[0-9a-z]{26}$"


def _as_form_error(exc: serializers.ValidationError) -> forms.ValidationError:
    detail = exc.detail if isinstance(exc.detail, list) else [exc.detail]
    return forms.ValidationError([str(message) for message in detail])


def event_choices() -> list[tuple[str, str]]:
    return [(catalogue.ALL_EVENTS, ALL_EVENTS_LABEL)] + [(name, name) for name in catalogue.names()]


def parse_filter(text: str) -> dict[str, Any] | None:
    """The filter box's JSON as the API takes it (empty: no filter); errors in the API's words."""
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise forms.ValidationError(f"Not valid JSON ({exc}).") from exc
    try:
        return validate_filter(value)
    except FilterError as exc:
        raise forms.ValidationError(str(exc)) from exc


def filter_text(value: dict[str, Any] | None) -> str:
    """A filter as the form's box shows it."""
    return "" if value is None else json.dumps(value, indent=2, ensure_ascii=False)


# The examples the form offers, in order: a button's value is the index.
FILTER_EXAMPLES = list(EXAMPLES.items())


class EventsField(forms.MultipleChoiceField):
    """Checkboxes of the catalogue; which names are acceptable is validate_event_list's call."""

    def valid_value(self, value: str) -> bool:
        return True


def event_options(form: forms.Form) -> list[dict[str, Any]]:
    """The form's event checkboxes, each with its catalogue description."""
    options = []
    for checkbox in form["events"]:
        name = checkbox.data["value"]
        kind = catalogue.EVENT_TYPES.get(name)
        description = kind.description if kind else "Every event type, including ones added later"
        options.append({"checkbox": checkbox, "description": description})
    return options


class EmailLoginForm(AuthenticationForm):
    """Django's login form with the email address as the username (as create_user stores it)."""

    username = forms.EmailField(
        label="Email",
        max_length=150,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Enter a correct email and password.",
        "no_organization": "This account does not belong to any organization.",
        "throttled": "Too many failed sign-ins. Try again later.",
    }

    def clean_username(self) -> str:
        return self.cleaned_data["username"].strip().lower()

    def clean(self) -> dict[str, Any]:
        if login_throttle.is_locked(self.request, self.cleaned_data.get("username")):
            raise forms.ValidationError(self.error_messages["throttled"], code="throttled")
        return super().clean()

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if organization_of_user(user.pk) is None:
            raise forms.ValidationError(self.error_messages["no_organization"], code="no_organization")


class WebhookEditForm(forms.Form):
    url = forms.CharField(
        label="URL",
        max_length=MAX_URL_LENGTH,
        widget=forms.URLInput(attrs={"placeholder": "https://your-server.com/webhook", "autocomplete": "off"}),
        help_text="Where events are sent as HTTP POST requests.",
    )
    events = EventsField(
        label="Events",
        required=False,  # validate_event_list says what is missing, in the API's words
        choices=event_choices,
        widget=forms.CheckboxSelectMultiple,
    )
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)
    description = forms.CharField(
        label="Description", required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2})
    )
    filter = forms.CharField(
        label="Filter",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 5, "class": "code-input", "spellcheck": "false"}),
        help_text='Only events whose envelope matches are sent, e.g. {"data.severity": {"$in": ["high", "critical"]}}.'
        " Empty: every subscribed event.",
    )
    # "Try it": which event type's sample the filter is tried against (never saved).
    try_event = forms.ChoiceField(
        label="Event type", required=False, choices=lambda: [(n, n) for n in catalogue.names()]
    )

    def clean_url(self) -> str:
        try:
            return validate_destination(self.cleaned_data["url"])
        except serializers.ValidationError as exc:
            raise _as_form_error(exc) from exc

    def clean_events(self) -> list[str]:
        try:
            return validate_event_list(self.cleaned_data["events"])
        except serializers.ValidationError as exc:
            raise _as_form_error(exc) from exc

    def clean_filter(self) -> dict[str, Any] | None:
        return parse_filter(self.cleaned_data["filter"])

    def changes(self) -> dict[str, Any]:
        """What a save writes (``try_event`` only serves "Try it")."""
        return {name: value for name, value in self.cleaned_data.items() if name != "try_event"}


class WebhookCreateForm(WebhookEditForm):
    # Never rendered back into the page, not even after a validation error.
    secret = forms.CharField(
        label="Signing secret",
        required=False,
        min_length=MIN_SECRET_LENGTH,
        max_length=MAX_SECRET_LENGTH,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=f"Optional, at least {MIN_SECRET_LENGTH} characters. Leave empty to generate a strong one.",
    )

    field_order = ["url", "events", "secret", "enabled", "description", "filter", "try_event"]

    def clean_secret(self) -> str:
        secret = self.cleaned_data["secret"]
        if secret:
            try:
                validate_secret(secret)
            except serializers.ValidationError as exc:
                raise _as_form_error(exc) from exc
        return secret


class DeliveryFilterForm(forms.Form):
    """The history's filters and keyset cursor, read from the query string."""

    status = forms.ChoiceField(label="Status", required=False, choices=[("", "All statuses"), *Delivery.Status.choices])
    event = forms.ChoiceField(
        label="Event type",
        required=False,
        choices=lambda: [("", "All event types")] + [(n, n) for n in catalogue.names()],
    )
    before = forms.RegexField(regex=DELIVERY_ID_PATTERN, required=False, widget=forms.HiddenInput)
    after = forms.RegexField(regex=DELIVERY_ID_PATTERN, required=False, widget=forms.HiddenInput)


def duration_text(seconds: int) -> str:
    """A duration as the pages say it: "24 hours", "7 days", "90 minutes", "45 seconds"."""
    units = [("day", 86400), ("hour", 3600), ("minute", 60)]
    for name, size in units:
        # Whole days from two on; a day is said in hours, as people say it of a deadline.
        if seconds % size == 0 and seconds >= (2 * size if name == "day" else size):
            count = seconds // size
            return f"{count} {name}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


class RotateSecretForm(forms.Form):
    """Rotate's two choices: the old secret keeps signing X-CyberCage-Signature for
    WEBHOOK_SECRET_OVERLAP (the default, also when no choice is posted), or stops now."""

    KEEP = "keep"
    STOP = "stop"
    previous = forms.ChoiceField(choices=[(KEEP, KEEP), (STOP, STOP)], required=False)

    def expire_previous_in(self) -> int | None:
        """``webhook_rotate_secret``'s argument: None for the default overlap, 0 for none."""
        return 0 if self.cleaned_data["previous"] == self.STOP else None


class SendTestEventForm(forms.Form):
    event = forms.ChoiceField(
        label="Event type", choices=lambda: [(n, n) for n in catalogue.names()], initial="test.ping"
    )
