# -*- coding: utf-8 -*-
# vim: ft=sls
# The package source and the pin. Debian: the contrib/non-free/non-free-firmware components;
# NVIDIA's CUDA repository (apt or dnf): its key is downloaded and only trusted once its
# fingerprint matches the recorded one. apt's lists are refreshed when any of it changed.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_driver with context %}
{%- set d = nvidia_driver.derived %}
{%- set cuda = nvidia_driver.cuda_repo %}
{%- set family = grains.os_family %}
{%- set use_cuda = nvidia_driver.add_repo and nvidia_driver.source == "cuda_repo" %}
{%- set key_download = "/var/cache/sre-tools/nvidia-driver/" ~ cuda.key_name %}
{%- set watched = [] %}

{%- if nvidia_driver.add_repo and nvidia_driver.source == "distro" and grains.os == "Debian" %}
{%-   do watched.append("nvidia_driver-package-repo-file-managed-debian") %}

nvidia_driver-package-repo-file-managed-debian:
  file.managed:
    - name: {{ nvidia_driver.debian.sources_file }}
    - source: salt://{{ tplroot }}/files/default/debian-nonfree.sources.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        nvidia_driver: {{ nvidia_driver | json }}
{%- endif %}

{%- if use_cuda %}

nvidia_driver-package-repo-pkg-installed:
  pkg.installed:
    - pkgs:
      - gnupg

nvidia_driver-package-repo-file-managed-key-download:
  file.managed:
    - name: {{ key_download }}
    - source: {{ d.cuda_repo_base }}/{{ cuda.key_name }}
    # No published checksum: the next state checks the key's fingerprint instead.
    - skip_verify: true
    - makedirs: true
    - mode: '0644'

nvidia_driver-package-repo-cmd-run-key-fingerprint:
  cmd.run:
    - name: >-
        echo "nvidia_driver: {{ key_download }} does not have fingerprint {{ d.cuda_key_fingerprint }}
        (pillar nvidia_driver:cuda_repo_key_fingerprint)" >&2; exit 1
    - unless: >-
        gpg --show-keys --with-colons {{ key_download }}
        | grep -qx 'fpr:::::::::{{ d.cuda_key_fingerprint }}:'
    - require:
      - pkg: nvidia_driver-package-repo-pkg-installed
      - file: nvidia_driver-package-repo-file-managed-key-download
{%-   if family == "Debian" %}
{%-     do watched.extend(["nvidia_driver-package-repo-file-managed-key", "nvidia_driver-package-repo-file-managed-cuda"]) %}

nvidia_driver-package-repo-file-managed-key:
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
      - cmd: nvidia_driver-package-repo-cmd-run-key-fingerprint

nvidia_driver-package-repo-file-managed-cuda:
  file.managed:
    - name: {{ cuda.sources_file }}
    - source: salt://{{ tplroot }}/files/default/cuda.sources.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        nvidia_driver: {{ nvidia_driver | json }}
    - require:
      - file: nvidia_driver-package-repo-file-managed-key
{%-   else %}

nvidia_driver-package-repo-cmd-run-rpm-key:
  cmd.run:
    - name: rpm --import {{ key_download }}
    - unless: rpm -q gpg-pubkey-{{ d.cuda_key_fingerprint[-8:] | lower }}
    - require:
      - cmd: nvidia_driver-package-repo-cmd-run-key-fingerprint

nvidia_driver-package-repo-pkgrepo-managed:
  pkgrepo.managed:
    - name: cuda-{{ d.cuda_repo_dir }}
    - humanname: NVIDIA CUDA {{ d.cuda_repo_dir }}
    - baseurl: {{ d.cuda_repo_base }}
    - gpgkey: file://{{ key_download }}
    - gpgcheck: 1
    - enabled: 1
    - require:
      - cmd: nvidia_driver-package-repo-cmd-run-rpm-key
{%-   endif %}
{%- endif %}

{%- if family == "Debian" %}
{%-   if nvidia_driver.pin %}
{%-     do watched.append("nvidia_driver-package-repo-file-managed-pin") %}

nvidia_driver-package-repo-file-managed-pin:
  file.managed:
    - name: {{ nvidia_driver.pin_file }}
    - source: salt://{{ tplroot }}/files/default/apt-preferences.pref.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        nvidia_driver: {{ nvidia_driver | json }}
{%-   else %}
{%-     do watched.append("nvidia_driver-package-repo-file-absent-pin") %}

nvidia_driver-package-repo-file-absent-pin:
  file.absent:
    - name: {{ nvidia_driver.pin_file }}
{%-   endif %}

nvidia_driver-package-repo-cmd-run-apt-update:
  cmd.run:
    - name: apt-get update
    - onchanges:
{%-   for state_id in watched %}
      - {{ state_id.split("-")[3] }}: {{ state_id }}
{%-   endfor %}
{%- else %}

nvidia_driver-package-repo-cmd-run-dnf-module:
  cmd.run:
    # The nvidia-driver module stream picks proprietary (-dkms) or open (-open) modules.
    - name: dnf -y module enable {{ nvidia_driver.dnf.module }}:{{ d.dnf_stream }}
    - unless: dnf -q module list --enabled {{ nvidia_driver.dnf.module }}:{{ d.dnf_stream }}
{%-   if use_cuda %}
    - require:
      - pkgrepo: nvidia_driver-package-repo-pkgrepo-managed
{%-   endif %}
{%- endif %}
