from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("deliveries", "0005_new_id_function")]

    operations = [
        migrations.AddField(
            model_name="attempt",
            name="response_body_replaced",
            field=models.BooleanField(default=False, db_default=False),
        ),
    ]
