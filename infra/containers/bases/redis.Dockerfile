# A stand-in for redis:7-bookworm where no image registry is reachable: Debian's redis-server
# (7.0), run as the redis user in /data, with the official image's --protected-mode no.
ARG BOOKWORM_IMAGE
FROM ${BOOKWORM_IMAGE}
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
USER redis
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["redis-server"]
