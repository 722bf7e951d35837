# -*- coding: utf-8 -*-
# vim: ft=sls
# Slurm HealthCheckProgram wiring (sre_agent:slurm:healthcheck): the wrapper and the slurm.conf
# fragment to include from slurm.conf (the Slurm formula owns slurm.conf itself).
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_config_file = tplroot ~ ".config.file" %}
{%- from tplroot ~ "/map.jinja" import mapdata as sre_agent with context %}
{%- set slurm = sre_agent.slurm %}
{%- if slurm.healthcheck %}

include:
  - {{ sls_config_file }}

sre_agent-config-slurm-file-managed:
  file.managed:
    - names:
      - {{ slurm.program }}:
        - source: salt://{{ tplroot }}/files/default/sre-slurm-healthcheck.sh.jinja
        - mode: '0755'
      - {{ slurm.conf_fragment }}:
        - source: salt://{{ tplroot }}/files/default/slurm-healthcheck.conf.jinja
        - mode: '0644'
    - template: jinja
    - makedirs: true
    - user: root
    - group: root
    - context:
        sre_agent: {{ sre_agent | json }}
    - require:
      - sls: {{ sls_config_file }}
{%- endif %}
