"""Strategy ``sre_linear``: Ansible's ``linear`` strategy, run over mitogen when it is installed.

ansible.cfg selects it (``strategy = sre_linear``, ``strategy_plugins`` pointing here), so the
provisioning plays (gpu_nodes.yml, monitoring.yml, so site.yml) get mitogen's connection layer
without a path into site-packages: one Python interpreter per node, reused by every task,
instead of a fresh interpreter and module transfer per task (docs/ansible-cli.md: an idempotent
site.yml re-run took 41.0 s instead of 99.1 s on the benchmark node). validate.yml, remediate.yml
and rolling_upgrade.yml set ``strategy: linear`` themselves.

Task order, ``serial``, ``max_fail_percentage``, handlers and check mode are the linear strategy's:
mitogen replaces connections (ssh, local, podman, ...) and the module runner, not the play logic.
Host keys are verified as before: mitogen reads ``host_key_checking`` (True in ansible.cfg) and
runs ssh with ``StrictHostKeyChecking=yes``.

When ``ansible_mitogen`` cannot be imported (not installed, or it refuses this ansible-core), the
plain ``linear`` strategy runs, with one warning that says why. ``ANSIBLE_STRATEGY=linear`` on the
command line turns mitogen off for one run.
"""

from __future__ import annotations

from ansible.errors import AnsibleError
from ansible.plugins.strategy.linear import StrategyModule as LinearStrategy
from ansible.utils.display import Display

_display = Display()

try:
    import ansible_mitogen.loaders  # checks the ansible-core version on import
    import ansible_mitogen.strategy
except (ImportError, AnsibleError) as exc:
    _MITOGEN_ERROR: str | None = f"{type(exc).__name__}: {exc}"
else:
    _MITOGEN_ERROR = None

if _MITOGEN_ERROR is None:

    class StrategyModule(ansible_mitogen.strategy.StrategyMixin, LinearStrategy):
        """mitogen's connection layer under Ansible's linear strategy."""

else:

    class StrategyModule(LinearStrategy):  # type: ignore[no-redef,misc]
        """Ansible's linear strategy; mitogen is not usable here."""

        def __init__(self, tqm):  # type: ignore[no-untyped-def]
            _display.warning(
                f"sre_linear: mitogen is not usable ({_MITOGEN_ERROR}); running the plain linear "
                "strategy (slower). Install it with: pip install 'sre-tools[ansible]'"
            )
            super().__init__(tqm)
