FROM busybox:local
RUN <<EOF
echo never ends
EOF2
