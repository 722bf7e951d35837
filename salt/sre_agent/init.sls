# -*- coding: utf-8 -*-
# vim: ft=sls
# The sre-tools agent: the package (a virtualenv), its health policy, the periodic health timer.
include:
  - .package
  - .config
  - .service
