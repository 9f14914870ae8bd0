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


@app.on_after_configure.connect
def _local_dirs_ensure(sender: Celery, **kwargs) -> None:
    # The filesystem broker and the file result backend need their folders before the first
    # message or result; made here, once the configuration is read, rather than by importing
    # settings (clawtrace_site/localdirs.py says why). Nothing happens for Redis.
    from clawtrace_site.localdirs import celery_dirs, dirs_ensure

    dirs_ensure(
        celery_dirs(
            broker_url=sender.conf.broker_url,
            transport_options=sender.conf.broker_transport_options,
            result_backend=sender.conf.result_backend,
        )
    )
