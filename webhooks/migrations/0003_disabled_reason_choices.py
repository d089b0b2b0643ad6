from django.conf import settings
from django.db import migrations, models

# The sentences earlier releases stored, and the choice each is now (Webhook.DisabledReason).
SENTENCES = {
    "disabled by user": "user",
    "disabled by an operator": "operator",
    "receiver answered 410 Gone": "gone",
}
FAILING_SENTENCE = r"^every delivery failed for \d+ days$"


def sentences_to_choices(apps, schema_editor):
    Webhook = apps.get_model("webhooks", "Webhook")
    for sentence, code in SENTENCES.items():
        Webhook.objects.filter(disabled_reason=sentence).update(disabled_reason=code)
    Webhook.objects.filter(disabled_reason__regex=FAILING_SENTENCE).update(disabled_reason="failing")


def choices_to_sentences(apps, schema_editor):
    Webhook = apps.get_model("webhooks", "Webhook")
    for sentence, code in SENTENCES.items():
        Webhook.objects.filter(disabled_reason=code).update(disabled_reason=sentence)
    failing = f"every delivery failed for {settings.WEBHOOK_DISABLE_AFTER_DAYS} days"
    Webhook.objects.filter(disabled_reason="failing").update(disabled_reason=failing)


class Migration(migrations.Migration):

    dependencies = [
        ('webhooks', '0002_membership'),
    ]

    operations = [
        migrations.AlterField(
            model_name='webhook',
            name='disabled_reason',
            field=models.CharField(blank=True, choices=[('user', 'disabled by user'), ('operator', 'disabled by an operator'), ('gone', 'receiver answered 410 Gone'), ('failing', 'every delivery failed for WEBHOOK_DISABLE_AFTER_DAYS days')], default='', max_length=200),
        ),
        migrations.RunPython(sentences_to_choices, choices_to_sentences),
    ]
