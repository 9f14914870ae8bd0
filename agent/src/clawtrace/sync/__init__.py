"""The sender: opt-in sync of metadata (time, model, token counts, cost) to a ClawTrace server.

Nothing here runs unless the user links the machine (`clawtrace login`); the wire contract is
docs/sync-protocol.md. No message text is ever read into an event: events are built from the
store's columns, which hold none.
"""
