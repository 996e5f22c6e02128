FROM busybox:local AS 1stage
