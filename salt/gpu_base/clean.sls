# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove what the formula wrote (packages stay: headers and tools may serve others), then
# rebuild the initramfs and re-execute systemd so the removals take effect.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as gpu_base with context %}

gpu_base-clean-file-absent:
  file.absent:
    - names:
      - {{ gpu_base.blacklist_file }}
      - {{ gpu_base.limits_file }}
      - {{ gpu_base.systemd_file }}
{%- if gpu_base.unattended_upgrades_file %}
      - {{ gpu_base.unattended_upgrades_file }}
{%- endif %}

gpu_base-clean-cmd-run-initramfs:
  cmd.run:
    - name: {{ gpu_base.initramfs_rebuild }}
    - onchanges:
      - file: {{ gpu_base.blacklist_file }}

gpu_base-clean-cmd-run-daemon-reexec:
  cmd.run:
    - name: systemctl daemon-reexec
    - onchanges:
      - file: {{ gpu_base.systemd_file }}
