FROM busybox:local
COPY --form=build /a /b
