"""Everything that talks to Prefect: the client, the action executors, and (in later
modules) the event bridge, resource lookups and impact queries.

It needs the optional extra `gitops-incidents[prefect]` (the official
`prefect-client`, which reads the user's Prefect profile, `PREFECT_API_URL` and
`PREFECT_API_KEY`, retries 408/429/502/503 and knows Prefect Cloud). Nothing here
imports it until a Prefect call is made, so the tracker runs without it.
"""
