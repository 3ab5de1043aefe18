"""Analytics backends behind one protocol.

Each backend turns its vendor's wire format into :mod:`adapters.answer` updates. Nothing in
this package knows about Slack, Teams or the database: ``bot`` imports ``adapters``, never the
other way round.
"""
