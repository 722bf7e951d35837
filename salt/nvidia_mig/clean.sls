# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove in reverse: the drop-in, the layouts and hooks, the package.
include:
  - .service.clean
  - .config.clean
  - .package.clean
