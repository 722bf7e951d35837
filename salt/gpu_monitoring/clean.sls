# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove in reverse: the services and units, the configuration, the packages.
include:
  - .service.clean
  - .config.clean
  - .package.clean
