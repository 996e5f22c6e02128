FROM busybox:local
ENV A=1 B
