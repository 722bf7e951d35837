# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_config_clean = tplroot ~ ".config.clean" %}
{%- from tplroot ~ "/map.jinja" import mapdata as container_runtime with context %}

include:
  - {{ sls_config_clean }}

container_runtime-package-clean-pkg-removed:
  pkg.removed:
    - pkgs: {{ container_runtime.nvidia_packages | json }}
    - require:
      - sls: {{ sls_config_clean }}

container_runtime-package-clean-file-absent:
  file.absent:
    - names:
      - {{ container_runtime.nvidia_repo.pin_file }}
      - {{ container_runtime.nvidia_repo.sources_file }}
      - {{ container_runtime.nvidia_repo.keyring }}
    - require:
      - pkg: container_runtime-package-clean-pkg-removed
