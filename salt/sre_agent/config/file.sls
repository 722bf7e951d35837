# -*- coding: utf-8 -*-
# vim: ft=sls
# The site health policy from pillar (sre_agent:config:policy), validated by sre-tools itself
# before it replaces the file (check_cmd gets the candidate file as its last argument).
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_package_install = tplroot ~ ".package.install" %}
{%- from tplroot ~ "/map.jinja" import mapdata as sre_agent with context %}
{%- set config = sre_agent.config %}

include:
  - {{ sls_package_install }}

sre_agent-config-file-file-managed:
  file.managed:
    - name: {{ config.dir }}/{{ config.file }}
    - source: salt://{{ tplroot }}/files/default/health.yaml.jinja
    - template: jinja
    - makedirs: true
    - user: {{ config.user }}
    - group: {{ config.group }}
    - mode: '{{ config.mode }}'
    - context:
        policy: {{ config.policy | json }}
    - check_cmd: >-
        {{ sre_agent.venv }}/bin/python -c 'import sys, pathlib;
        from sre_tools.health.policy import load_policy_file;
        load_policy_file(pathlib.Path(sys.argv[1]))'
    - require:
      - sls: {{ sls_package_install }}
