# -*- coding: utf-8 -*-
# vim: ft=sls
# The login-shell environment (/etc/profile.d/cuda.sh) and the /usr/local/cuda and
# /usr/local/cuda-<major> alternatives at the default version (NVIDIA's repository only; the
# distribution's toolkit lives in /usr/bin).
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_package_install = tplroot ~ ".package.install" %}
{%- from tplroot ~ "/map.jinja" import mapdata as cuda_toolkit with context %}
{%- set d = cuda_toolkit.derived %}
{%- set nvidia = cuda_toolkit.source == "cuda_repo" %}

include:
  - {{ sls_package_install }}
{%- if nvidia and cuda_toolkit.profile %}

cuda_toolkit-config-file-file-managed:
  file.managed:
    - name: {{ cuda_toolkit.profile_file }}
    - source: salt://{{ tplroot }}/files/default/cuda.sh.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        default: {{ d.default | json }}
        prefix: {{ cuda_toolkit.prefix }}
        versions: {{ cuda_toolkit.versions | json }}
{%- else %}

cuda_toolkit-config-file-file-absent:
  file.absent:
    - name: {{ cuda_toolkit.profile_file }}
{%- endif %}
{%- if nvidia and cuda_toolkit.alternatives %}

cuda_toolkit-config-file-cmd-run-alternatives:
  cmd.run:
    # update-alternatives itself: Salt 3008 no longer ships the alternatives state module.
    # --set also puts the link in manual mode, so a newer toolkit's higher priority never
    # moves it; nothing to do when it already points there in manual mode.
    - names:
{%-   for link in ["cuda", "cuda-" ~ d.major] %}
      - update-alternatives --set {{ link }} {{ cuda_toolkit.prefix }}-{{ d.default }}:
        - unless: >-
            update-alternatives --query {{ link }}
            | grep -qx 'Value: {{ cuda_toolkit.prefix }}-{{ d.default }}' &&
            update-alternatives --query {{ link }} | grep -qx 'Status: manual'
{%-   endfor %}
    # Not before the toolkit is there (install_packages off).
    - onlyif: test -d {{ cuda_toolkit.prefix }}-{{ d.default }}
    - require:
      - sls: {{ sls_package_install }}
{%- endif %}
