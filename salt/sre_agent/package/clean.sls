# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove the virtualenv and any copied wheel (system packages stay: others may use Python).
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_config_clean = tplroot ~ ".config.clean" %}
{%- from tplroot ~ "/map.jinja" import mapdata as sre_agent with context %}

include:
  - {{ sls_config_clean }}

sre_agent-package-clean-file-absent:
  file.absent:
    - names:
      - {{ sre_agent.venv }}
      - {{ sre_agent.source.wheel_dir }}
    - require:
      - sls: {{ sls_config_clean }}
