# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_config_clean = tplroot ~ ".config.clean" %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_fabricmanager with context %}
{%- set d = nvidia_fabricmanager.derived %}

include:
  - {{ sls_config_clean }}

nvidia_fabricmanager-package-clean-pkg-removed:
  pkg.removed:
    - name: {{ d.package }}
    - require:
      - sls: {{ sls_config_clean }}

nvidia_fabricmanager-package-clean-file-absent:
  file.absent:
    - name: {{ nvidia_fabricmanager.pin_file }}
    - require:
      - pkg: nvidia_fabricmanager-package-clean-pkg-removed
