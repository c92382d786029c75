FROM python:3.11-slim
WORKDIR /srv/taskfleet
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TASKFLEET_HOME=/tmp/taskfleet
COPY setup.cfg pyproject.toml README.md beat_schedule.py Procfile ./
COPY app ./app
COPY workers ./workers
COPY migrations ./migrations
COPY client ./client
# The CLI's API commands use the Python client (client/, its own package).
# EXTRAS="[demo]" adds scikit-learn for `taskfleet demo-model` (about 275 MB more); the
# dispatcher's own services do without it.
ARG EXTRAS=""
RUN pip install --no-cache-dir ./client ".${EXTRAS}"
# The processes run as an unprivileged user; what they write (beat's schedule, the
# SQLite file if no DATABASE_URL is set) goes to $TASKFLEET_HOME, which it owns.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin taskfleet \
    && mkdir -p /tmp/taskfleet && chown taskfleet:taskfleet /tmp/taskfleet
USER taskfleet
# Each compose service runs one Procfile entry; see docker-compose.yml.
CMD ["taskfleet", "--help"]
