"""The Celery app: `celery -A clawtrace_site worker` and `celery -A clawtrace_site beat`.

Configuration comes from Django settings (the `CELERY_*` names); the beat schedule is a dict
there too. Without `REDIS_URL` the broker is kombu's filesystem transport under the data dir.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clawtrace_site.settings")

app = Celery("clawtrace_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# clawtrace_site is the project package, not an installed app, so autodiscovery would miss its
# own tasks module (the `ping` task).
app.autodiscover_tasks(["clawtrace_site"])
