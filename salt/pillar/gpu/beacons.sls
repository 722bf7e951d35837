# The gpu_health beacon on every GPU node: a health run a minute, events on transitions only.
# Needs the custom beacon and module on the minion: salt 'gpu-*' saltutil.sync_all.
beacons:
  gpu_health:
    - interval: 60
    - config: /etc/sre-tools/health.yaml
    - cooldown:
        default: 300
        xid: 60
    - state_file: /var/cache/salt/minion/gpu_health/state.json
    - max_event_bytes: 16384
