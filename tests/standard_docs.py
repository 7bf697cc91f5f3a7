"""The examples of Django's Tasks documentation ("Django's Tasks framework"),
unchanged but for the import, which falls back on the django-tasks backport
on Django 5.2."""

import logging

from django.core.mail import send_mail

try:
    from django.tasks import task
except ImportError:  # Django 5.2
    from django_tasks import task  # type: ignore[no-redef, unused-ignore]

logger = logging.getLogger(__name__)


@task
def email_users(emails, subject, message):
    return send_mail(
        subject=subject, message=message, from_email=None, recipient_list=emails
    )


@task(takes_context=True)
def email_users_with_context(context, emails, subject, message):
    logger.debug(
        f"Attempt {context.attempt} to send user email. Task result id: {context.task_result.id}."  # noqa: E501 - as the documentation has it
    )
    return send_mail(
        subject=subject, message=message, from_email=None, recipient_list=emails
    )
