# Load the Celery app with Django so `@shared_task` binds to it in web and worker processes.
from clawtrace_site.celery import app as celery_app

__all__ = ["celery_app"]
