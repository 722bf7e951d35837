# -*- coding: utf-8 -*-
# vim: ft=sls
# The kernel module parameters (their own modprobe.d file; none: the file is removed), the
# nvidia-persistenced drop-in (restart policy, hardening) and the GPU check script.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_driver with context %}
{%- set persistenced = nvidia_driver.persistenced %}

{%- if nvidia_driver.module_options %}

nvidia_driver-config-file-file-managed-module-options:
  file.managed:
    - name: {{ nvidia_driver.module_options_file }}
    - source: salt://{{ tplroot }}/files/default/nvidia-module-options.conf.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        nvidia_driver: {{ nvidia_driver | json }}
{%- else %}

nvidia_driver-config-file-file-absent-module-options:
  file.absent:
    - name: {{ nvidia_driver.module_options_file }}
{%- endif %}

{%- if nvidia_driver.manage_service %}

nvidia_driver-config-file-file-managed-persistenced:
  file.managed:
    - name: {{ persistenced.dropin_dir }}/{{ persistenced.dropin_file }}
    - source: salt://{{ tplroot }}/files/default/nvidia-persistenced.override.conf.jinja
    - template: jinja
    - makedirs: true
    - dir_mode: '0755'
    - user: root
    - group: root
    - mode: '0644'

nvidia_driver-config-file-cmd-run-daemon-reload:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: nvidia_driver-config-file-file-managed-persistenced
{%- endif %}

{%- if nvidia_driver.verify %}

nvidia_driver-config-file-file-managed-verify:
  file.managed:
    - name: {{ nvidia_driver.verify_script }}
    - source: salt://{{ tplroot }}/files/default/nvidia-driver-verify.py
    - makedirs: true
    - user: root
    - group: root
    - mode: '0755'

{#- The check runs nvml_probe.py from its own directory for verify_method: nvml. The probe has one
    copy, in roles/nvidia_driver/files/, because the role must carry it when installed from Galaxy
    without this repository; files/default/nvml_probe.py is a link to it, which a master serving
    this checkout's salt/ follows (a copy of salt/ resolves it: cp -rL, as for sre_versions.yaml). #}
nvidia_driver-config-file-file-managed-nvml-probe:
  file.managed:
    - name: {{ nvidia_driver.derived.nvml_probe }}
    - source: salt://{{ tplroot }}/files/default/nvml_probe.py
    - makedirs: true
    - user: root
    - group: root
    - mode: '0755'
{%- endif %}
