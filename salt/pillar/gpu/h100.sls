# HGX H100 8-GPU nodes: where sre-tools comes from, the health policy, the health timer.
# Secrets (an index token, a webhook) belong in an encrypted pillar (gpg renderer), never here.
sre_agent:
  source:
    # A pinned requirement from the site's package index, or a wheel the master serves:
    #   wheel: salt://sre_agent/files/wheels/sre_tools-0.1.0-py3-none-any.whl
    #   wheel_hash: sha256=<hex>
    requirement: sre-tools==0.1.0
    index_url: ''
  config:
    # The site health policy (sre_tools.health.policy keys; `sre health --config` reads it).
    policy:
      profile: h100-sxm-8
      xid:
        backfill_seconds: 86400
      collection:
        timeout_seconds: 10
  service:
    on_calendar: '*:0/5'
    randomized_delay_sec: 30

# Defaults for the gpu execution module and the gpu_health beacon (config.get sre_tools:<key>).
sre_tools:
  profile: h100-sxm-8
  config: /etc/sre-tools/health.yaml
