# A stand-in for nginx:1.27-bookworm where no image registry is reachable: Debian's nginx
# (1.22), in the foreground, with the configuration mounted at /etc/nginx/nginx.conf.
ARG BOOKWORM_IMAGE
FROM ${BOOKWORM_IMAGE}
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends nginx-light >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && nginx -v
STOPSIGNAL SIGQUIT
EXPOSE 8080
CMD ["nginx", "-g", "daemon off;"]
