FROM busybox:local
SHELL /bin/bash -c
