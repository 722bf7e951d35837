# -*- coding: utf-8 -*-
# vim: ft=sls
# node_exporter's arguments or unit, the textfile directory, the dcgm-exporter and sre exporter
# units, the sre exporter's secrets (pillar only, never in diffs), the file_sd fragments.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_package_install = tplroot ~ ".package.install" %}
{%- from tplroot ~ "/map.jinja" import mapdata as gpu_monitoring with context %}
{%- set ne = gpu_monitoring.node_exporter %}
{%- set sre = gpu_monitoring.sre_exporter %}
{%- set fsd = gpu_monitoring.file_sd %}
{%- set units = [] %}
{%- if ne.enabled and ne.source == "binary" %}{% do units.append("node_exporter.service") %}{% endif %}
{%- if gpu_monitoring.dcgm.enabled and gpu_monitoring.dcgm_exporter.enabled %}{% do units.append("dcgm-exporter.service") %}{% endif %}
{%- if sre.enabled %}{% do units.append("sre-exporter.service") %}{% endif %}

include:
  - {{ sls_package_install }}
{%- if ne.enabled %}

gpu_monitoring-config-file-file-directory:
  file.directory:
    - name: {{ gpu_monitoring.textfile_dir }}
    - makedirs: true
    - mode: '0755'
{%-   if ne.source == "package" %}

gpu_monitoring-config-file-file-managed-node-exporter-args:
  file.managed:
    - name: {{ ne.defaults_file }}
    - source: salt://{{ tplroot }}/files/default/prometheus-node-exporter.default.jinja
    - template: jinja
    - mode: '0644'
    - context:
        gpu_monitoring: {{ gpu_monitoring | json }}
    - require:
      - sls: {{ sls_package_install }}
{%-   endif %}
{%- endif %}
{%- if units %}

gpu_monitoring-config-file-file-managed-units:
  file.managed:
    - names:
{%-   for unit in units %}
      - /etc/systemd/system/{{ unit }}:
        - source: salt://{{ tplroot }}/files/default/{{ unit }}.jinja
{%-   endfor %}
    - template: jinja
    - mode: '0644'
    - context:
        gpu_monitoring: {{ gpu_monitoring | json }}
{%- endif %}
{%- if sre.enabled and (sre.tls_cert or sre.basic_auth_users) %}

gpu_monitoring-config-file-file-managed-secrets:
  file.managed:
    - names:
{%-   if sre.tls_cert %}
      - {{ sre.secrets_dir }}/tls.crt:
        - contents_pillar: gpu_monitoring:sre_exporter:tls_cert
      - {{ sre.secrets_dir }}/tls.key:
        - contents_pillar: gpu_monitoring:sre_exporter:tls_key
{%-   endif %}
{%-   if sre.basic_auth_users %}
      - {{ sre.secrets_dir }}/basic-auth:
        - source: salt://{{ tplroot }}/files/default/basic-auth.jinja
        - template: jinja
{%-   endif %}
    - makedirs: true
    - dir_mode: '0700'
    - mode: '0600'
    - show_changes: false
{%- endif %}
{%- if fsd.enabled %}

gpu_monitoring-config-file-file-serialize:
  file.serialize:
    - names:
{%-   set jobs = [("node", ne.enabled, ne.listen_address),
                  ("dcgm", gpu_monitoring.dcgm.enabled and gpu_monitoring.dcgm_exporter.enabled,
                   gpu_monitoring.dcgm_exporter.listen_address),
                  ("sre", sre.enabled, sre.listen_address)] %}
{%-   for job, enabled, address in jobs if enabled %}
{#-     The sre exporter's job is the one the GPU alert rules and dashboards select. #}
{%-     set labels = {"job": "sre-gpu-exporter" if job == "sre" else "gpu-" ~ job, "node": grains.id} %}
{%-     do labels.update(fsd.labels) %}
      - {{ fsd.dir }}/{{ job }}-{{ grains.id }}.json:
        - dataset: {{ [{"targets": [(fsd.target_host or grains.id) ~ ":" ~ address.split(":")[-1]], "labels": labels}] | json }}
{%-   endfor %}
    - serializer: json
    - makedirs: true
    - mode: '0644'
{%- endif %}
{%- set grafana = gpu_monitoring.grafana %}
{%- if grafana.enabled %}

gpu_monitoring-config-file-file-recurse-dashboards:
  file.recurse:
    - name: {{ grafana.dashboards_dir }}
    - source: salt://{{ tplroot }}/files/dashboards
    - include_pat: '*.json'
    - clean: true
    - makedirs: true
    - dir_mode: '0755'
    - file_mode: '0644'

gpu_monitoring-config-file-file-serialize-dashboard-provider:
  file.serialize:
    - name: {{ grafana.provisioning_dir }}/sre-tools.yml
    - serializer: yaml
    - makedirs: true
    - mode: '0644'
    - dataset:
        apiVersion: 1
        providers:
          - name: sre-tools
            orgId: 1
            folder: {{ grafana.folder | json }}
            folderUid: sre-tools
            type: file
            disableDeletion: true
            allowUiUpdates: false
            updateIntervalSeconds: 60
            options:
              path: {{ grafana.dashboards_dir | json }}
              foldersFromFilesStructure: false
{%- endif %}
{%- set am = gpu_monitoring.alertmanager %}
{%- if am.enabled %}

gpu_monitoring-config-file-file-serialize-alertmanagers:
  file.serialize:
    - name: {{ am.sd_file }}
    - dataset: {{ [{"targets": am.targets}] | json }}
    - serializer: json
    - makedirs: true
    - mode: '0644'
{%- endif %}
