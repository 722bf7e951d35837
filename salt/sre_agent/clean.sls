# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove the agent, in reverse: stop the timer, remove the policy, remove the virtualenv.
include:
  - .service.clean
  - .config.clean
  - .package.clean
