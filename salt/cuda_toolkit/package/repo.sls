# -*- coding: utf-8 -*-
# vim: ft=sls
# The package source: NVIDIA's CUDA repository (its key downloaded and only trusted once its
# fingerprint matches the recorded one; the sources file and keyring are the ones nvidia_driver
# and nvidia_fabricmanager write, with the same content), or Debian's contrib/non-free
# components for nvidia-cuda-toolkit. apt's lists are refreshed when any of it changed.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as cuda_toolkit with context %}
{%- set d = cuda_toolkit.derived %}
{%- set cuda = cuda_toolkit.cuda_repo %}
{%- set key_download = "/var/cache/sre-tools/cuda-toolkit/" ~ cuda.key_name %}
{%- set watched = [] %}
{%- if cuda_toolkit.add_repo %}
{%-   if cuda_toolkit.source == "distro" and cuda_toolkit.debian.write_sources %}
{%-     do watched.append("cuda_toolkit-package-repo-file-managed-debian") %}

cuda_toolkit-package-repo-file-managed-debian:
  file.managed:
    - name: {{ cuda_toolkit.debian.sources_file }}
    - source: salt://{{ tplroot }}/files/default/debian-nonfree.sources.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        mirror: {{ cuda_toolkit.debian_mirror }}
        codename: {{ d.codename }}
        components: {{ cuda_toolkit.debian.components | json }}
        keyring: {{ cuda_toolkit.debian.keyring }}
{%-   endif %}
{%-   if cuda_toolkit.source == "cuda_repo" %}
{%-     do watched.extend(["cuda_toolkit-package-repo-file-managed-key", "cuda_toolkit-package-repo-file-managed-cuda"]) %}

cuda_toolkit-package-repo-pkg-installed:
  pkg.installed:
    - pkgs:
      - gnupg

cuda_toolkit-package-repo-file-managed-key-download:
  file.managed:
    - name: {{ key_download }}
    - source: {{ d.cuda_repo_base }}/{{ cuda.key_name }}
    # No published checksum: the next state checks the key's fingerprint instead.
    - skip_verify: true
    - makedirs: true
    - mode: '0644'

cuda_toolkit-package-repo-cmd-run-key-fingerprint:
  cmd.run:
    - name: >-
        echo "cuda_toolkit: {{ key_download }} does not have fingerprint
        {{ d.cuda_key_fingerprint }} (pillar cuda_toolkit:cuda_repo_key_fingerprint)" >&2; exit 1
    - unless: >-
        gpg --show-keys --with-colons {{ key_download }}
        | grep -qx 'fpr:::::::::{{ d.cuda_key_fingerprint }}:'
    - require:
      - pkg: cuda_toolkit-package-repo-pkg-installed
      - file: cuda_toolkit-package-repo-file-managed-key-download

cuda_toolkit-package-repo-file-managed-key:
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
      - cmd: cuda_toolkit-package-repo-cmd-run-key-fingerprint

cuda_toolkit-package-repo-file-managed-cuda:
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
      - file: cuda_toolkit-package-repo-file-managed-key
{%-   endif %}
{%-   if watched %}

cuda_toolkit-package-repo-cmd-run-apt-update:
  cmd.run:
    - name: apt-get update
    - onchanges:
{%-     for state_id in watched %}
      - {{ state_id.split("-")[3] }}: {{ state_id }}
{%-     endfor %}
{%-   endif %}
{%- endif %}
