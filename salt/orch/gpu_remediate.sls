{#- Orchestration: ask sre_tools.remediation what to do with one gpu_health beacon event. #}
{%- set event_tag = salt['pillar.get']('sre_event_tag', '') %}
{%- set event_data = salt['pillar.get']('sre_event_data', {}) %}
sre-orch-gpu-remediate-runner-handle:
  salt.runner:
    - name: sre_remediate.handle
    - tag: {{ event_tag | json }}
    - data: {{ event_data | json }}
