"""Notifications: the product's e-mail (``notify.email``), alert and summary messages
(``notify.messages``), Slack and signed webhooks (``notify.hooks``), and the background jobs
that send them with retries (``notify.jobs``)."""
