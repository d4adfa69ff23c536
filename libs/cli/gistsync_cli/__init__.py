"""`gistsync`: the operator's command line. Checks a deployment's settings, broker and API
tokens, manages the tracked users and the dead letters over the broker, and starts the
services. It talks to the system the way the services do (the same settings, messages and
queues), so what it sees is what they see."""
