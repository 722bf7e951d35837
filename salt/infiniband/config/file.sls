# -*- coding: utf-8 -*-
# vim: ft=sls
# IPoIB interfaces (systemd-networkd .network files or ifupdown stanzas) and the nvidia-peermem
# unit, ordered after the RDMA stack's module loading.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_package_install = tplroot ~ ".package.install" %}
{%- from tplroot ~ "/map.jinja" import mapdata as infiniband with context %}
{%- set ipoib = infiniband.ipoib %}

include:
  - {{ sls_package_install }}
{%- if ipoib.interfaces %}

infiniband-config-file-file-managed-ipoib:
  file.managed:
    - names:
{%-   for iface in ipoib.interfaces %}
{%-     if ipoib.backend == "networkd" %}
      - {{ ipoib.networkd_dir }}/50-ipoib-{{ iface.name }}.network:
        - source: salt://{{ tplroot }}/files/default/ipoib.network.jinja
{%-     else %}
      - {{ ipoib.ifupdown_dir }}/{{ iface.name }}:
        - source: salt://{{ tplroot }}/files/default/ipoib.interfaces.jinja
{%-     endif %}
        - context:
            iface: {{ iface | json }}
{%-   endfor %}
    - template: jinja
    - makedirs: true
    - user: root
    - group: root
    - mode: '0644'
{%- endif %}
{%- if infiniband.peermem.enable %}

infiniband-config-file-file-managed-peermem:
  file.managed:
    - name: /etc/systemd/system/{{ infiniband.peermem.unit }}
    - source: salt://{{ tplroot }}/files/default/nvidia-peermem-load.service.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        infiniband: {{ infiniband | json }}
    - require:
      - sls: {{ sls_package_install }}
{%- endif %}
