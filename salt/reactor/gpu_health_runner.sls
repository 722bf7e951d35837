{#- Beacon events from gpu_health: call the sre_remediate runner on the master directly.
    The default route (salt/reactor/master.conf.example): one runner call per event, about a
    tenth of the CPU of the orchestration route (gpu_health.sls), which stays for sites that add
    steps to salt/orch/gpu_remediate.sls. The event is passed as data (JSON, never rendered into a
    command); the runner checks the tag's minion id against the event and validates it again. #}
sre-reactor-gpu-health-runner-handle:
  runner.sre_remediate.handle:
    - args:
      - tag: {{ tag | json }}
      - data: {{ data | json }}
