# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_service_clean = tplroot ~ ".service.clean" %}
{%- from tplroot ~ "/map.jinja" import mapdata as sre_agent with context %}

include:
  - {{ sls_service_clean }}

sre_agent-config-clean-file-absent:
  file.absent:
    - name: {{ sre_agent.config.dir }}/{{ sre_agent.config.file }}
    - require:
      - sls: {{ sls_service_clean }}

sre_agent-config-clean-file-absent-slurm:
  file.absent:
    - names:
      - {{ sre_agent.slurm.program }}
      - {{ sre_agent.slurm.conf_fragment }}
      - {{ sre_agent.slurm.prolog_program }}
      - {{ sre_agent.slurm.epilog_program }}
      - {{ sre_agent.slurm.hooks_conf_fragment }}
    - require:
      - sls: {{ sls_service_clean }}
