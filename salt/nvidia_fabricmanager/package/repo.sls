# -*- coding: utf-8 -*-
# vim: ft=sls
# NVIDIA's CUDA repository (its key downloaded and only trusted once its fingerprint matches the
# recorded one) and the pin to the driver's version or branch; apt's lists are refreshed when
# any of it changed. The sources file and keyring are the ones nvidia_driver and cuda_toolkit
# write, with the same content.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_fabricmanager with context %}
{%- set d = nvidia_fabricmanager.derived %}
{%- set cuda = nvidia_fabricmanager.cuda_repo %}
{%- set key_download = "/var/cache/sre-tools/nvidia-fabricmanager/" ~ cuda.key_name %}
{%- set watched = [] %}
{%- if d.wanted %}
{%-   if nvidia_fabricmanager.add_repo %}
{%-     do watched.extend(["nvidia_fabricmanager-package-repo-file-managed-key", "nvidia_fabricmanager-package-repo-file-managed-cuda"]) %}

nvidia_fabricmanager-package-repo-pkg-installed:
  pkg.installed:
    - pkgs:
      - gnupg

nvidia_fabricmanager-package-repo-file-managed-key-download:
  file.managed:
    - name: {{ key_download }}
    - source: {{ d.cuda_repo_base }}/{{ cuda.key_name }}
    # No published checksum: the next state checks the key's fingerprint instead.
    - skip_verify: true
    - makedirs: true
    - mode: '0644'

nvidia_fabricmanager-package-repo-cmd-run-key-fingerprint:
  cmd.run:
    - name: >-
        echo "nvidia_fabricmanager: {{ key_download }} does not have fingerprint
        {{ d.cuda_key_fingerprint }} (pillar nvidia_fabricmanager:cuda_repo_key_fingerprint)" >&2; exit 1
    - unless: >-
        gpg --show-keys --with-colons {{ key_download }}
        | grep -qx 'fpr:::::::::{{ d.cuda_key_fingerprint }}:'
    - require:
      - pkg: nvidia_fabricmanager-package-repo-pkg-installed
      - file: nvidia_fabricmanager-package-repo-file-managed-key-download

nvidia_fabricmanager-package-repo-file-managed-key:
  file.managed:
    - name: {{ cuda.keyring }}
    - source: {{ key_download }}
    # test=True on a fresh node has downloaded nothing yet: nothing to compare then.
    - onlyif: test -f {{ key_download }}
    - makedirs: true
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - cmd: nvidia_fabricmanager-package-repo-cmd-run-key-fingerprint

nvidia_fabricmanager-package-repo-file-managed-cuda:
  file.managed:
    - name: {{ cuda.sources_file }}
    - source: salt://{{ tplroot }}/files/default/cuda.sources.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        base: {{ d.cuda_repo_base }}
        fingerprint: {{ d.cuda_key_fingerprint }}
        keyring: {{ cuda.keyring }}
    - require:
      - file: nvidia_fabricmanager-package-repo-file-managed-key
{%-   endif %}
{%-   if nvidia_fabricmanager.pin %}
{%-     do watched.append("nvidia_fabricmanager-package-repo-file-managed-pin") %}

nvidia_fabricmanager-package-repo-file-managed-pin:
  file.managed:
    - name: {{ nvidia_fabricmanager.pin_file }}
    - source: salt://{{ tplroot }}/files/default/apt-preferences.pref.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        package: {{ d.package }}
        pin_version: {{ d.pin_version | json }}
        pin_target: {{ d.pin_target | json }}
{%-   else %}
{%-     do watched.append("nvidia_fabricmanager-package-repo-file-absent-pin") %}

nvidia_fabricmanager-package-repo-file-absent-pin:
  file.absent:
    - name: {{ nvidia_fabricmanager.pin_file }}
{%-   endif %}

nvidia_fabricmanager-package-repo-cmd-run-apt-update:
  cmd.run:
    - name: apt-get update
    - onchanges:
{%-   for state_id in watched %}
      - {{ state_id.split("-")[3] }}: {{ state_id }}
{%-   endfor %}
{%- endif %}
