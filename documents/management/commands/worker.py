"""``manage.py worker``: the background worker — django-q2's ``qcluster`` — with its Prometheus
metrics on ``METRICS_PORT`` (kb_site/metrics.py). Every launcher of the product starts this."""

from django.core.management import call_command
from django.core.management.base import BaseCommand

from kb_site import metrics


class Command(BaseCommand):
    help = "Run the background worker (django-q2's qcluster), serving its metrics on METRICS_PORT when set."

    def handle(self, *args, **options):
        metrics.serve("worker")
        call_command("qcluster")
