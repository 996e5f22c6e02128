FROM busybox:local
COPY onlyone
