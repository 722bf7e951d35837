# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove the driver, in reverse: stop nvidia-persistenced, remove the configuration, release
# the hold and remove the packages, the pin and the package source.
include:
  - .service.clean
  - .config.clean
  - .package.clean
