"""The on-call CLI ``sre``: parse, call the library, print (rich table or ``--json``), exit."""
