"""Seed the taxonomy with behaviour-based labels for terrorist and violent-extremist content.

Labels describe what the content *does*, not who made it, following the behaviour-based approach
of GIFCT's hash-sharing taxonomy. Consortium admins edit the set in the Django admin.
"""

from django.db import migrations

LABELS = [
    ("attack-footage", "Attack footage",
     "Footage of a real terrorist or violent-extremist attack, recorded by a perpetrator, accomplice or bystander."),
    ("livestreamed-attack", "Livestreamed attack",
     "An attack broadcast live by a perpetrator or accomplice, or a recording of such a broadcast."),
    ("manifesto", "Manifesto",
     "A document written by an attacker to explain, justify or promote an attack."),
    ("glorification", "Glorification",
     "Praise or celebration of a terrorist attack or perpetrator, including memes and edits of attack footage."),
    ("recruitment", "Recruitment",
     "Material intended to recruit people into a terrorist or violent-extremist organisation or movement."),
    ("incitement", "Incitement",
     "Explicit calls for violence against people or groups."),
    ("instructional", "Instructional material",
     "Instructions for attacks: making weapons or explosives, choosing targets, evading security."),
    ("graphic-violence", "Graphic violence",
     "Executions, torture or mutilation of defenceless people by terrorist or violent-extremist actors."),
    ("propaganda", "Official propaganda",
     "Branded publications and media of a designated terrorist organisation."),
    ("threat", "Threat",
     "A credible threat of violence against identifiable people, places or events."),
    ("financing", "Financing",
     "Solicitation of funds or material support for terrorist or violent-extremist activity."),
]


def seed(apps, schema_editor):
    Label = apps.get_model("federation", "Label")
    for slug, name, description in LABELS:
        Label.objects.update_or_create(slug=slug, defaults={"name": name, "description": description})


def unseed(apps, schema_editor):
    Label = apps.get_model("federation", "Label")
    Label.objects.filter(slug__in=[slug for slug, _, _ in LABELS], entries=None).delete()


class Migration(migrations.Migration):
    dependencies = [("federation", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
