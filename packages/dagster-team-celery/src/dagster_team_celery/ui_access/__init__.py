"""Who may do what in the Dagster UI: roles per team, enforced in the webserver behind the login
proxy (people.py: who the caller is; mutations.py: what each GraphQL mutation needs;
request_context.py: Dagster's own per-location permissions, per caller; audit.py: the record of
every change asked for; team_webserver.py: the webserver that puts them together)."""
