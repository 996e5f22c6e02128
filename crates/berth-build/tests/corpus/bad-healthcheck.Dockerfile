FROM busybox:local
HEALTHCHECK WGET localhost
