# -*- coding: utf-8 -*-
# vim: ft=sls
# nvidia-mig-manager.service applies the selection at boot (a drop-in points it at our files);
# with nvidia_mig:apply the layout is applied now, when it differs and the node is drained.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_package_install = tplroot ~ ".package.install" %}
{%- set sls_config_file = tplroot ~ ".config.file" %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_mig with context %}

include:
  - {{ sls_package_install }}
  - {{ sls_config_file }}
{%- if nvidia_mig.manage_service %}

nvidia_mig-service-running-file-managed:
  file.managed:
    - name: {{ nvidia_mig.dropin }}
    - source: salt://{{ tplroot }}/files/default/nvidia-mig-manager.override.conf.jinja
    - template: jinja
    - makedirs: true
    - user: root
    - group: root
    - mode: '0644'
    - context:
        nvidia_mig: {{ nvidia_mig | json }}

nvidia_mig-service-running-cmd-run-daemon-reload:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: nvidia_mig-service-running-file-managed
{%-   if nvidia_mig.manager.install %}

nvidia_mig-service-running-service-enabled:
  service.{{ "enabled" if nvidia_mig.service_enabled else "disabled" }}:
    - name: nvidia-mig-manager.service
    - require:
      - sls: {{ sls_package_install }}
{%-   endif %}
{%- endif %}
{%- if nvidia_mig.apply %}

nvidia_mig-service-running-cmd-run-apply:
  cmd.run:
    # The script refuses (exit 1, one line naming the node and its state) unless drained. (No
    # python_shell: the cmd.run state always runs a shell and rejects the argument.)
    - name: {{ nvidia_mig.apply_script }}
    - unless: >-
        {{ nvidia_mig.parted }} assert -f {{ nvidia_mig.config_file }} -c {{ nvidia_mig.selected_config }}
    - require:
      - sls: {{ sls_config_file }}
{%- endif %}
