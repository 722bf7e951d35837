# -*- coding: utf-8 -*-
# vim: ft=sls
# `sre health` on a systemd timer: a hardened oneshot service, its timer, the timer running.
# Salt's systemd module reloads the daemon by itself when a unit file changed.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_package_install = tplroot ~ ".package.install" %}
{%- set sls_config_file = tplroot ~ ".config.file" %}
{%- from tplroot ~ "/map.jinja" import mapdata as sre_agent with context %}
{%- set service = sre_agent.service %}

include:
  - {{ sls_package_install }}
  - {{ sls_config_file }}

sre_agent-service-running-file-directory:
  file.directory:
    - name: {{ service.state_dir }}
    - user: root
    - group: root
    - mode: '0750'

{%- if service.replay %}

sre_agent-service-running-file-managed-replay:
  file.managed:
    - name: {{ service.state_dir }}/replay.json
    - source: {{ service.replay }}
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - file: sre_agent-service-running-file-directory
{%- endif %}

sre_agent-service-running-file-managed:
  file.managed:
    - names:
      - {{ service.unit_dir }}/{{ service.name }}.service:
        - source: salt://{{ tplroot }}/files/default/sre-health.service.jinja
      - {{ service.unit_dir }}/{{ service.name }}.timer:
        - source: salt://{{ tplroot }}/files/default/sre-health.timer.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        sre_agent: {{ sre_agent | json }}
    - require:
      - sls: {{ sls_package_install }}

sre_agent-service-running-service-running:
  service.{{ "running" if service.enable else "dead" }}:
    - name: {{ service.name }}.timer
    - enable: {{ service.enable }}
    - watch:
      - sls: {{ sls_config_file }}
    - require:
      - sls: {{ sls_package_install }}
