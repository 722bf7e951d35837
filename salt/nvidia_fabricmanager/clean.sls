# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove Fabric Manager, in reverse: stop the service, remove the package and its pin. The CUDA
# repository stays (nvidia_driver and cuda_toolkit may use it).
include:
  - .service.clean
  - .config.clean
  - .package.clean
