# -*- coding: utf-8 -*-
# vim: ft=sls
# The inbox RDMA stack, or DOCA-OFED from NVIDIA's DOCA repository: the key is downloaded and
# only trusted once its fingerprint matches; the package is pinned and held.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as infiniband with context %}
{%- set doca = infiniband.doca %}
{%- set key_download = "/var/cache/sre-tools/infiniband/doca-key.asc" %}
{%- if infiniband.ipoib.interfaces and infiniband.ipoib.backend == "ifupdown" %}

infiniband-package-install-pkg-installed-ifupdown:
  pkg.installed:
    - name: ifupdown
{%- endif %}
{%- if infiniband.stack == "inbox" %}

infiniband-package-install-pkg-installed:
  pkg.installed:
    - pkgs: {{ (infiniband.inbox.pkgs + infiniband.extra_packages) | json }}
{%- else %}
{%-   if doca.add_repo %}

infiniband-package-install-pkg-installed-gnupg:
  pkg.installed:
    - pkgs:
      - gnupg

infiniband-package-install-file-managed-key-download:
  file.managed:
    - name: {{ key_download }}
    - source: {{ doca.repo_key_url }}
    # No published checksum: the next state checks the key's fingerprint instead.
    - skip_verify: true
    - makedirs: true
    - mode: '0644'

infiniband-package-install-cmd-run-key-fingerprint:
  cmd.run:
    - name: >-
        echo "infiniband: {{ key_download }} does not have fingerprint {{ doca.repo_key_fingerprint | upper }}
        (pillar infiniband:doca:repo_key_fingerprint)" >&2; exit 1
    - unless: >-
        gpg --show-keys --with-colons {{ key_download }}
        | grep -qx 'fpr:::::::::{{ doca.repo_key_fingerprint | upper }}:'
    - require:
      - pkg: infiniband-package-install-pkg-installed-gnupg
      - file: infiniband-package-install-file-managed-key-download

infiniband-package-install-file-managed-key:
  file.managed:
    - name: {{ doca.keyring }}
    - source: {{ key_download }}
    # test=True on a fresh node has downloaded nothing yet: nothing to compare then.
    - onlyif: test -f {{ key_download }}
    - makedirs: true
    - mode: '0644'
    - require:
      - cmd: infiniband-package-install-cmd-run-key-fingerprint

infiniband-package-install-file-managed-sources:
  file.managed:
    - name: {{ doca.sources_file }}
    - source: salt://{{ tplroot }}/files/default/doca.sources.jinja
    - template: jinja
    - mode: '0644'
    - context:
        infiniband: {{ infiniband | json }}
    - require:
      - file: infiniband-package-install-file-managed-key
{%-   endif %}

infiniband-package-install-file-managed-pin:
  file.{{ "managed" if doca.pin else "absent" }}:
    - name: {{ doca.pin_file }}
{%-   if doca.pin %}
    - source: salt://{{ tplroot }}/files/default/doca.pref.jinja
    - template: jinja
    - mode: '0644'
    - context:
        infiniband: {{ infiniband | json }}
{%-   endif %}

infiniband-package-install-cmd-run-apt-update:
  cmd.run:
    - name: apt-get update
    - onchanges:
      - file: infiniband-package-install-file-managed-pin
{%-   if doca.add_repo %}
      - file: infiniband-package-install-file-managed-sources
{%-   endif %}

infiniband-package-install-pkg-installed:
  pkg.installed:
    - pkgs:
{%-   for name in doca.pkgs %}
      - {{ name }}: '{{ doca.version }}-*'
{%-   endfor %}
{%-   for name in infiniband.extra_packages %}
      - {{ name }}
{%-   endfor %}
    - hold: {{ doca.hold }}
    - update_holds: true
    - require:
      - cmd: infiniband-package-install-cmd-run-apt-update
{%- endif %}
