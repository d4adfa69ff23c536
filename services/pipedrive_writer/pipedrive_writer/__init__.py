"""pipedrive_writer: the only holder of the Pipedrive token and the only writer to Pipedrive.

Turns commands and events into the organization, persons, deals and activities, and answers
the read queries from a cache rebuilt from Pipedrive at start.
"""
