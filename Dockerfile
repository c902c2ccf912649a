# shoprec service image: the engine with the production extra (PostgreSQL + Redis clients).
#   docker build -t shoprec .                       # CPU-only; add --build-arg EXTRAS=production,all for SASRec etc.
#   docker compose -f deploy/compose.yaml up        # PostgreSQL, Redis, a trained model, two workers
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
ARG EXTRAS=production

WORKDIR /app
# the CPU build of torch first when an extra needs it (an unpinned torch pulls a multi-GB CUDA build)
RUN case ",${EXTRAS}," in *,all,*|*,neural,*|*,embeddings,*) \
        pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 ;; esac
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[${EXTRAS}]"

# an unprivileged user; what it writes (models, SQLite store, key files) is owner-only (0600/0700)
# (/data/models exists in the image so that an empty named volume mounted there is the user's)
RUN useradd --create-home --uid 10001 shoprec && mkdir -p /data/models && chown -R shoprec /data \
    && chmod 700 /data /data/models
USER shoprec
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2).status != 200)"

ENTRYPOINT ["shoprec"]
# the demo shop's model if /data/models has none, then serve it; override for your own data:
#   docker run … shoprec train --data csv:/data/events.csv --out /data/models
CMD ["serve", "--model", "/data/models", "--store", "sqlite:////data/events.db", "--host", "0.0.0.0"]
