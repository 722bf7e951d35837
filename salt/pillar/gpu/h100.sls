# HGX H100 8-GPU nodes (minions gpu-*, except gpu-a100-*): the GPU stack's settings per formula,
# where sre-tools comes from, the health policy, the health timer. Versions and branches are not
# set here: they come from sre_tools/data/versions.yml (salt/sre_versions.yaml), shared with
# Ansible; set nvidia_driver:branch / version here only to move this SKU off the shared default.
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

gpu_base:
  # DKMS builds against the running kernel's headers.
  kernel_headers: running
  packages: [pciutils, numactl]

nvidia_driver:
  # Debian 12: non-free's 535 branch with DKMS; proprietary modules (Debian has the open ones in
  # one build only). On Ubuntu/RHEL set source: cuda_repo and open: true for Hopper.
  source: distro
  open: false
  headless: true
  module_options:
    NVreg_RestrictProfilingToAdminUsers: 0
    NVreg_EnableStreamMemOPs: 1
  persistenced_state: started
  verify_method: nvml
  verify_gpu_count: 8

nvidia_mig:
  manager:
    # nvidia-mig-manager is a .deb from mig-parted's GitHub releases, whose checksum this example
    # cannot know. Mirror the file, then set install: true, deb_url (salt:// or your mirror) and
    # deb_hash: sha256=<hex of the file you mirrored>.
    install: false
  # MIG stays off until a layout is chosen for the node (nvidia_mig:configs, selected_config).
  selected_config: all-disabled

nvidia_fabricmanager:
  # HGX 8-GPU baseboards have NVSwitches: install it whether or not they are visible yet (auto
  # would skip a node whose NVSwitches are not enumerated at the first run). Same branch and
  # version as the driver.
  install: always
