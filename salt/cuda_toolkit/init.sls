# -*- coding: utf-8 -*-
# vim: ft=sls
# CUDA toolkits side by side (NVIDIA's repository) or the distribution's, the default version
# behind /usr/local/cuda, and the login-shell environment.
include:
  - .package
  - .config
