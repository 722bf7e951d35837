# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_service_clean = tplroot ~ ".service.clean" %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_driver with context %}
{%- set persistenced = nvidia_driver.persistenced %}

include:
  - {{ sls_service_clean }}

nvidia_driver-config-clean-file-absent:
  file.absent:
    - names:
      - {{ nvidia_driver.module_options_file }}
      - {{ persistenced.dropin_dir }}/{{ persistenced.dropin_file }}
      - {{ nvidia_driver.verify_script }}
      - {{ nvidia_driver.derived.nvml_probe }}
    - require:
      - sls: {{ sls_service_clean }}

nvidia_driver-config-clean-cmd-run-daemon-reload:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: nvidia_driver-config-clean-file-absent
