FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN useradd --create-home --uid 10001 app
COPY pyproject.toml ./
COPY requirements ./requirements
COPY jobs ./jobs
# The wheel holds the app only; the reference project runs from /app. The
# reference project's exact versions (the ranges are in pyproject.toml).
RUN pip install -c requirements/py311-django52.txt '.[demo]'
COPY console ./console
COPY manage.py ./
# Bytecode written once here: PYTHONDONTWRITEBYTECODE (and a read-only /app)
# would otherwise make every process compile the project as it starts.
RUN python -m compileall -q console jobs manage.py
COPY templates ./templates
RUN DEBUG=1 STATIC_ROOT=/app/staticfiles python manage.py collectstatic --noinput \
    && mkdir -p /app/var && chown -R app:app /app/var
ENV STATIC_ROOT=/app/staticfiles
USER app
EXPOSE 8000
CMD ["gunicorn", "console.wsgi:application", "--bind", "0.0.0.0:8000",
     "--logger-class", "console.weblog.JsonLogger"]
