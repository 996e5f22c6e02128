FROM busybox:local
ONBUILD FROM other
