# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_config_clean = tplroot ~ ".config.clean" %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_mig with context %}

include:
  - {{ sls_config_clean }}

nvidia_mig-package-clean-pkg-removed:
  pkg.removed:
    - name: nvidia-mig-manager
    - require:
      - sls: {{ sls_config_clean }}

nvidia_mig-package-clean-file-absent:
  file.absent:
    - name: {{ nvidia_mig.manager.deb_dir }}
