# A stand-in for postgres:15-bookworm where no image registry is reachable: Debian's
# postgresql-15, with an entrypoint that honours the official image's POSTGRES_USER,
# POSTGRES_DB and POSTGRES_HOST_AUTH_METHOD (the variables infra/docker-compose.yml sets). The
# socket directory is world-writable (3777) as in the official image: a tmpfs mounted over it
# (the compose file's read-only root) takes that mode, and the server runs as postgres.
ARG BOOKWORM_IMAGE
FROM ${BOOKWORM_IMAGE}
# No "main" cluster from the package: the entrypoint creates one in the volume on first start.
RUN mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
 && apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 700 /var/lib/postgresql/data \
 && chmod 3777 /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
USER postgres
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
