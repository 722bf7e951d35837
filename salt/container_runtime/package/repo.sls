# -*- coding: utf-8 -*-
# vim: ft=sls
# NVIDIA's libnvidia-container repository (its key downloaded and only trusted once its
# fingerprint matches the recorded one) and the pin of the toolkit packages to one version;
# apt's lists are refreshed when any of it changed.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as container_runtime with context %}
{%- set d = container_runtime.derived %}
{%- set repo = container_runtime.nvidia_repo %}
{%- set key_download = "/var/cache/sre-tools/container-runtime/gpgkey" %}
{%- set watched = [] %}
{%- if container_runtime.nvidia %}
{%-   if container_runtime.nvidia_add_repo %}
{%-     do watched.extend(["container_runtime-package-repo-file-managed-key", "container_runtime-package-repo-file-managed-sources"]) %}

container_runtime-package-repo-pkg-installed:
  pkg.installed:
    - pkgs:
      - gnupg

container_runtime-package-repo-file-managed-key-download:
  file.managed:
    - name: {{ key_download }}
    - source: {{ container_runtime.nvidia_repo_key_url }}
    # No published checksum: the next state checks the key's fingerprint instead.
    - skip_verify: true
    - makedirs: true
    - mode: '0644'

container_runtime-package-repo-cmd-run-key-fingerprint:
  cmd.run:
    - name: >-
        echo "container_runtime: {{ key_download }} does not have fingerprint {{ d.key_fingerprint }}
        (pillar container_runtime:nvidia_repo_key_fingerprint)" >&2; exit 1
    - unless: >-
        gpg --show-keys --with-colons {{ key_download }}
        | grep -qx 'fpr:::::::::{{ d.key_fingerprint }}:'
    - require:
      - pkg: container_runtime-package-repo-pkg-installed
      - file: container_runtime-package-repo-file-managed-key-download

container_runtime-package-repo-file-managed-key:
  file.managed:
    - name: {{ repo.keyring }}
    - source: {{ key_download }}
    # test=True on a fresh node has downloaded nothing yet: nothing to compare then.
    - onlyif: test -f {{ key_download }}
    - makedirs: true
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - cmd: container_runtime-package-repo-cmd-run-key-fingerprint

container_runtime-package-repo-file-managed-sources:
  file.managed:
    - name: {{ repo.sources_file }}
    - source: salt://{{ tplroot }}/files/default/nvidia-container-toolkit.sources.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        base: {{ d.repo_base }}
        fingerprint: {{ d.key_fingerprint }}
        keyring: {{ repo.keyring }}
    - require:
      - file: container_runtime-package-repo-file-managed-key
{%-   endif %}
{%-   if container_runtime.nvidia_pin %}
{%-     do watched.append("container_runtime-package-repo-file-managed-pin") %}

container_runtime-package-repo-file-managed-pin:
  file.managed:
    - name: {{ repo.pin_file }}
    - source: salt://{{ tplroot }}/files/default/apt-preferences.pref.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        packages: {{ container_runtime.nvidia_packages | json }}
        version: {{ container_runtime.nvidia_container_toolkit_version | json }}
{%-   endif %}
{%- endif %}
{%- if not (container_runtime.nvidia and container_runtime.nvidia_pin) %}
{%-   do watched.append("container_runtime-package-repo-file-absent-pin") %}

container_runtime-package-repo-file-absent-pin:
  file.absent:
    - name: {{ repo.pin_file }}
{%- endif %}

container_runtime-package-repo-cmd-run-apt-update:
  cmd.run:
    - name: apt-get update
    - onchanges:
{%- for state_id in watched %}
      - {{ state_id.split("-")[3] }}: {{ state_id }}
{%- endfor %}
