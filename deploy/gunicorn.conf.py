"""gunicorn settings for the referral-sync web app (several nodes: PostgreSQL + Redis).

    gunicorn -c deploy/gunicorn.conf.py

Every value can be overridden from the environment (``GUNICORN_CMD_ARGS`` or the variables
below). The embedded default does not need this file: ``referral-sync serve`` is enough.
"""

import multiprocessing
import os

wsgi_app = "webhooks:create_app()"
bind = os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
# Each request is short (verify, one transaction, enqueue); threads cover the waits on the
# database, processes the CPU. Two per core keeps a 2-core node busy without thrashing.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
# Salesforce waits up to 2 minutes, HubSpot 30 s, for an answer; anything near that is a bug.
timeout = 30
graceful_timeout = 20
keepalive = 5
# Bodies above 1 MiB are refused by the app (413); this bounds the headers too.
limit_request_line = 8190
limit_request_field_size = 16384
# Each worker opens its own database pool and queue connection after the fork.
preload_app = False
accesslog = "-"
errorlog = "-"
# Access lines carry the path: the Salesforce endpoint's path holds its secret token.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
