# escape=`
FROM busybox:local
RUN echo C:\path `
    && echo next
ENV WIN=C:\dir
