# -*- coding: utf-8 -*-
# vim: ft=sls
# The layouts (validated by sre-tools before they replace the file), the hooks that stop and
# start our GPU clients, and the script that applies a layout on a drained node only.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_package_install = tplroot ~ ".package.install" %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_mig with context %}

include:
  - {{ sls_package_install }}
  # sre-tools (the sre_agent formula's virtualenv) validates the layouts: install it first.
  - sre_agent.package.install

nvidia_mig-config-file-file-managed:
  file.managed:
    - name: {{ nvidia_mig.config_file }}
    - source: salt://{{ tplroot }}/files/default/mig-config.yaml.jinja
    - template: jinja
    - makedirs: true
    - user: root
    - group: root
    - mode: '0644'
    - context:
        nvidia_mig: {{ nvidia_mig | json }}
    # sre-tools validates the candidate (schema, slice totals, the GPU's profiles).
    - check_cmd: >-
        {{ nvidia_mig.sre_venv }}/bin/python -c 'import sys;
        from sre_tools.mig.config import parse_mig_config;
        parse_mig_config(open(sys.argv[2]).read(), sys.argv[2], memory=sys.argv[1] or None)'
        '{{ nvidia_mig.gpu_memory }}'
    - require:
      - sls: {{ sls_package_install }}
      - sls: sre_agent.package.install

nvidia_mig-config-file-file-managed-hooks:
  file.managed:
    - names:
      - {{ nvidia_mig.hooks_script }}:
        - source: salt://{{ tplroot }}/files/default/sre-hooks.sh.jinja
        - mode: '0755'
      - {{ nvidia_mig.hooks_file }}:
        - source: salt://{{ tplroot }}/files/default/sre-hooks.yaml.jinja
        - mode: '0644'
      - {{ nvidia_mig.apply_script }}:
        - source: salt://{{ tplroot }}/files/default/sre-apply-if-drained.sh.jinja
        - mode: '0755'
    - template: jinja
    - makedirs: true
    - user: root
    - group: root
    - context:
        nvidia_mig: {{ nvidia_mig | json }}
