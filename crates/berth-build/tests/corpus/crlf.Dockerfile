FROM busybox:local
RUN echo crlf
