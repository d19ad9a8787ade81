"""The room: a live instructor dashboard fed by every attendee's checks.

- ``store``: the room's SQLite database (attendees, events; tokens hashed).
- ``board``: what the dashboard shows, computed from the events (pure logic).
- ``server``: the tornado service (`labkit room serve`) and its HTTP API.
- ``client``: an attendee's join, leave and background sender (`labkit room join`).
"""
