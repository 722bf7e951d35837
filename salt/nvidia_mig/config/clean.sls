# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_service_clean = tplroot ~ ".service.clean" %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_mig with context %}

include:
  - {{ sls_service_clean }}

nvidia_mig-config-clean-file-absent:
  file.absent:
    - names:
      - {{ nvidia_mig.config_file }}
      - {{ nvidia_mig.hooks_file }}
      - {{ nvidia_mig.hooks_script }}
      - {{ nvidia_mig.apply_script }}
    - require:
      - sls: {{ sls_service_clean }}
