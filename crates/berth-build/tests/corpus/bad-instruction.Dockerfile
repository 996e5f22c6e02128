FROM busybox:local

  RUNN echo typo
