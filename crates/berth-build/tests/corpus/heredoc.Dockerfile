FROM busybox:local
RUN <<EOF
echo one
echo two > /two
EOF
COPY <<-"END" /etc/motd
	welcome $NOT_EXPANDED
	END
RUN cat /etc/motd
