# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sre_agent with context %}
{%- set service = sre_agent.service %}

sre_agent-service-clean-service-dead:
  service.dead:
    - name: {{ service.name }}.timer
    - enable: false

sre_agent-service-clean-file-absent:
  file.absent:
    - names:
      - {{ service.unit_dir }}/{{ service.name }}.service
      - {{ service.unit_dir }}/{{ service.name }}.timer
      - {{ service.output }}
    - require:
      - service: sre_agent-service-clean-service-dead
