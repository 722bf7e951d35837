# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_service_clean = tplroot ~ ".service.clean" %}
{%- from tplroot ~ "/map.jinja" import mapdata as container_runtime with context %}

include:
  - {{ sls_service_clean }}

container_runtime-config-clean-file-absent:
  file.absent:
    - names:
      - {{ container_runtime.nvidia_dropin }}
      - {{ container_runtime.cdi_spec }}
    - require:
      - sls: {{ sls_service_clean }}

container_runtime-config-clean-cmd-run:
  cmd.run:
    - name: systemctl try-restart containerd.service
    - onchanges:
      - file: container_runtime-config-clean-file-absent
