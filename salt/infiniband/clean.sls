# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove in reverse: the peermem unit, the IPoIB files, the packages.
include:
  - .service.clean
  - .config.clean
  - .package.clean
