# -*- coding: utf-8 -*-
# vim: ft=sls
# node_exporter (the distribution's package, pinned and held, or the checksum-verified upstream
# binary); DCGM 4 and dcgm-exporter from NVIDIA's CUDA repository (key checked by fingerprint),
# pinned and held.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as gpu_monitoring with context %}
{%- set ne = gpu_monitoring.node_exporter %}
{%- set d = gpu_monitoring.derived %}
{%- set cuda = gpu_monitoring.cuda_repo %}
{%- set key_download = "/var/cache/sre-tools/gpu-monitoring/3bf863cc.pub" %}
{%- set ne_package = ne.enabled and ne.source == "package" %}

gpu_monitoring-package-install-file-managed-node-exporter-pin:
  file.{{ "managed" if ne_package and gpu_monitoring.pin else "absent" }}:
    - name: {{ ne.pin_file }}
{%- if ne_package and gpu_monitoring.pin %}
    - source: salt://{{ tplroot }}/files/default/node_exporter.pref.jinja
    - template: jinja
    - mode: '0644'
    - context:
        gpu_monitoring: {{ gpu_monitoring | json }}
{%- endif %}
{%- if ne_package %}

gpu_monitoring-package-install-pkg-installed-node-exporter:
  pkg.installed:
    - pkgs:
      # The distribution's revision varies ("1.5.0-1+b6"): the upstream version, any revision.
      - {{ ne.package }}: '{{ ne.package_version }}-*'
    - hold: {{ gpu_monitoring.hold }}
    - update_holds: true
    - require:
      - file: gpu_monitoring-package-install-file-managed-node-exporter-pin
{%- elif ne.enabled %}

gpu_monitoring-package-install-user-present:
  user.present:
    - name: {{ ne.user }}
    - system: true
    - shell: /usr/sbin/nologin
    - home: /nonexistent
    - createhome: false

gpu_monitoring-package-install-archive-extracted:
  archive.extracted:
    - name: {{ ne.archive_dir }}
    - source: {{ d.node_exporter_url }}
    - source_hash: {{ ne.hash }}
    - if_missing: {{ ne.archive_dir }}/{{ d.node_exporter_dir }}/node_exporter

gpu_monitoring-package-install-file-copy:
  file.copy:
    - name: {{ ne.binary }}
    - source: {{ ne.archive_dir }}/{{ d.node_exporter_dir }}/node_exporter
    - force: true
    - mode: '0755'
    - unless: cmp -s {{ ne.archive_dir }}/{{ d.node_exporter_dir }}/node_exporter {{ ne.binary }}
    - require:
      - archive: gpu_monitoring-package-install-archive-extracted
{%- endif %}
{%- if gpu_monitoring.dcgm.enabled %}
{%-   if d.add_cuda_repo %}

gpu_monitoring-package-install-pkg-installed-gnupg:
  pkg.installed:
    - pkgs:
      - gnupg

gpu_monitoring-package-install-file-managed-key-download:
  file.managed:
    - name: {{ key_download }}
    - source: {{ d.cuda_repo_base }}/3bf863cc.pub
    # No published checksum: the next state checks the key's fingerprint instead.
    - skip_verify: true
    - makedirs: true
    - mode: '0644'

gpu_monitoring-package-install-cmd-run-key-fingerprint:
  cmd.run:
    - name: >-
        echo "gpu_monitoring: {{ key_download }} does not have fingerprint {{ cuda.key_fingerprint | upper }}
        (pillar gpu_monitoring:cuda_repo:key_fingerprint)" >&2; exit 1
    - unless: >-
        gpg --show-keys --with-colons {{ key_download }}
        | grep -qx 'fpr:::::::::{{ cuda.key_fingerprint | upper }}:'
    - require:
      - pkg: gpu_monitoring-package-install-pkg-installed-gnupg
      - file: gpu_monitoring-package-install-file-managed-key-download

gpu_monitoring-package-install-file-managed-key:
  file.managed:
    - name: {{ cuda.keyring }}
    - source: {{ key_download }}
    # test=True on a fresh node has downloaded nothing yet: nothing to compare then.
    - onlyif: test -f {{ key_download }}
    - makedirs: true
    - mode: '0644'
    - require:
      - cmd: gpu_monitoring-package-install-cmd-run-key-fingerprint

gpu_monitoring-package-install-file-managed-sources:
  file.managed:
    - name: {{ cuda.sources_file }}
    - source: salt://{{ tplroot }}/files/default/cuda.sources.jinja
    - template: jinja
    - mode: '0644'
    - context:
        gpu_monitoring: {{ gpu_monitoring | json }}
    - require:
      - file: gpu_monitoring-package-install-file-managed-key
{%-   endif %}

gpu_monitoring-package-install-file-managed-pin:
  file.{{ "managed" if gpu_monitoring.pin else "absent" }}:
    - name: {{ gpu_monitoring.pin_file }}
{%-   if gpu_monitoring.pin %}
    - source: salt://{{ tplroot }}/files/default/dcgm.pref.jinja
    - template: jinja
    - mode: '0644'
    - context:
        gpu_monitoring: {{ gpu_monitoring | json }}
{%-   endif %}

gpu_monitoring-package-install-cmd-run-apt-update:
  cmd.run:
    - name: apt-get update
    - onchanges:
      - file: gpu_monitoring-package-install-file-managed-pin
{%-   if d.add_cuda_repo %}
      - file: gpu_monitoring-package-install-file-managed-sources
{%-   endif %}

gpu_monitoring-package-install-pkg-installed:
  pkg.installed:
    - pkgs:
{%-   for name in d.dcgm_pkgs %}
      - {{ name }}: '{{ gpu_monitoring.dcgm.version }}-*'
{%-   endfor %}
{%-   if gpu_monitoring.dcgm_exporter.enabled %}
{%-     for name in gpu_monitoring.dcgm_exporter.pkgs %}
      - {{ name }}: '{{ gpu_monitoring.dcgm_exporter.version }}-*'
{%-     endfor %}
{%-   endif %}
    - hold: {{ gpu_monitoring.hold }}
    - update_holds: true
    - require:
      - cmd: gpu_monitoring-package-install-cmd-run-apt-update
{%- endif %}
