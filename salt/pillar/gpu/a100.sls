# HGX A100 8-GPU nodes (minions gpu-a100-*): the GPU stack's settings per formula, the health
# policy and timer. Versions and branches come from sre_tools/data/versions.yml (shared with
# Ansible), not from here. Secrets belong in an encrypted pillar (gpg renderer), never here.
gpu_base:
  kernel_headers: running
  packages: [pciutils, numactl]

nvidia_driver:
  # Ampere: the proprietary kernel modules from Debian's non-free 535 branch, built by DKMS.
  source: distro
  open: false
  headless: true
  module_options:
    NVreg_RestrictProfilingToAdminUsers: 0
  persistenced_state: started
  verify_method: nvidia_smi
  verify_gpu_count: 8

sre_agent:
  source:
    requirement: sre-tools==0.1.0
    index_url: ''
  config:
    policy:
      profile: a100-sxm-8
      xid:
        backfill_seconds: 86400
      collection:
        timeout_seconds: 10
  service:
    on_calendar: '*:0/5'
    randomized_delay_sec: 30

# Defaults for the gpu execution module and the gpu_health beacon (config.get sre_tools:<key>).
sre_tools:
  profile: a100-sxm-8
  config: /etc/sre-tools/health.yaml

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
