# syntax=docker/dockerfile:1
# escape=\
ARG BASE=busybox:local

# the build stage
FROM --platform=linux/amd64 ${BASE} AS build
WORKDIR /src
COPY --chown=1000:1000 --chmod=644 a.txt b.txt ./
RUN --mount=type=secret,id=token \
    # a comment inside a continuation
    cat /run/secrets/token > /dev/null && \
    echo built > /out
ENV GREETING="hello world" LEVEL=3
LABEL org.example.name=demo version=1.0

FROM ${BASE}
COPY --from=build /out /out
EXPOSE 80/tcp 53/udp
VOLUME ["/data"]
USER nobody
HEALTHCHECK --interval=5s --retries=3 CMD ["wget", "-q", "-O-", "http://localhost/"]
STOPSIGNAL SIGTERM
SHELL ["/bin/sh", "-c"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD echo $GREETING
ONBUILD RUN echo triggered
