# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_package_install = tplroot ~ ".package.install" %}
{%- from tplroot ~ "/map.jinja" import mapdata as gpu_base with context %}

include:
  - {{ sls_package_install }}

gpu_base-config-file-file-{{ "managed" if gpu_base.blacklist_nouveau else "absent" }}-blacklist:
  file.{{ "managed" if gpu_base.blacklist_nouveau else "absent" }}:
    - name: {{ gpu_base.blacklist_file }}
{%- if gpu_base.blacklist_nouveau %}
    - source: salt://{{ tplroot }}/files/default/blacklist-nouveau.conf
    - user: root
    - group: root
    - mode: '0644'
{%- endif %}
{%- if gpu_base.rebuild_initramfs %}

gpu_base-config-file-cmd-run-initramfs:
  cmd.run:
    # The blacklist must also hold in early boot.
    - name: {{ gpu_base.initramfs_rebuild }}
    - onchanges:
      - file: gpu_base-config-file-file-{{ "managed" if gpu_base.blacklist_nouveau else "absent" }}-blacklist
    - require:
      - sls: {{ sls_package_install }}
{%- endif %}
{%- if gpu_base.manage_unattended_upgrades and gpu_base.unattended_upgrades_file %}

gpu_base-config-file-file-managed-unattended-upgrades:
  file.managed:
    - name: {{ gpu_base.unattended_upgrades_file }}
    - source: salt://{{ tplroot }}/files/default/apt-unattended-upgrades.conf.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        exclude: {{ gpu_base.unattended_upgrades_exclude | json }}
{%- elif gpu_base.manage_unattended_upgrades and gpu_base.dnf_automatic_file %}

gpu_base-config-file-ini-options-present-dnf-automatic:
  ini.options_present:
    - name: {{ gpu_base.dnf_automatic_file }}
    - sections:
        base:
          excludepkgs: {{ gpu_base.unattended_upgrades_exclude | map("regex_replace", "$", "*") | join(",") }}
{%- endif %}
{%- if gpu_base.manage_limits %}

gpu_base-config-file-file-managed-limits:
  file.managed:
    - names:
      - {{ gpu_base.limits_file }}:
        - source: salt://{{ tplroot }}/files/default/memlock-limits.conf.jinja
      - {{ gpu_base.systemd_file }}:
        - source: salt://{{ tplroot }}/files/default/memlock-systemd.conf.jinja
    - template: jinja
    - makedirs: true
    - user: root
    - group: root
    - mode: '0644'
    - context:
        domain: '{{ gpu_base.memlock_domain }}'
        limit: '{{ gpu_base.memlock_limit }}'

gpu_base-config-file-cmd-run-daemon-reexec:
  cmd.run:
    # systemd reads DefaultLimitMEMLOCK only when it (re-)executes.
    - name: systemctl daemon-reexec
    - onchanges:
      - file: {{ gpu_base.systemd_file }}
{%- endif %}
