# -*- coding: utf-8 -*-
# vim: ft=sls
# Stop and disable nvidia-persistenced (nothing to do where it is not installed) and unload
# nothing: a loaded driver stays until the node reboots.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_driver with context %}

nvidia_driver-service-clean-service-dead:
  service.dead:
    - name: {{ nvidia_driver.persistenced.service }}
    - enable: false
